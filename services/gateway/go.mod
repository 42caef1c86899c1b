module github.com/concord-kv/concord/services/gateway

go 1.26.0
