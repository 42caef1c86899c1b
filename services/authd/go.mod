module github.com/concord-kv/concord/services/authd

go 1.26.0
