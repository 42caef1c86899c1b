module github.com/concord-kv/concord/tools

go 1.26.0
