module github.com/concord-kv/concord/sdk/go

go 1.26.0
