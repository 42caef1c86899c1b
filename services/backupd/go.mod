module github.com/concord-kv/concord/services/backupd

go 1.26.0

require (
	github.com/concord-kv/concord/proto v0.0.0
	github.com/klauspost/compress v1.20.3
	google.golang.org/protobuf v1.36.12
)

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20260819154853-08b0e4226688 // indirect
)

replace github.com/concord-kv/concord/proto => ../../proto
