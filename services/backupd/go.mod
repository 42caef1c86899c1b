module github.com/concord-kv/concord/services/backupd

go 1.26.0
