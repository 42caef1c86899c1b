module github.com/concord-kv/concord/tests

go 1.26.0
