package server

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/validate"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"google.golang.org/protobuf/proto"
)

// TestPlainlyValidAgreesWithProtovalidate checks the fast path against the
// rules it shortcuts: it may send a valid request to protovalidate, but it
// must never pass an invalid one.
func TestPlainlyValidAgreesWithProtovalidate(t *testing.T) {
	long := strings.Repeat("k", 513)
	items := func(n int) []*concordv1.PutItem {
		out := make([]*concordv1.PutItem, n)
		for i := range out {
			out[i] = &concordv1.PutItem{Key: "k"}
		}
		return out
	}
	keys := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "k"
		}
		return out
	}
	for _, tc := range []struct {
		name string
		msg  proto.Message
		fast bool // whether the fast path passes it
	}{
		{"get", &concordv1.GetRequest{Key: "user:1001", Consistency: concordv1.Consistency_CONSISTENCY_STRONG, WithTtl: true}, true},
		{"get unicode key", &concordv1.GetRequest{Key: "clé/日本"}, true},
		{"get 512-byte key", &concordv1.GetRequest{Key: long[:512]}, true},
		{"get empty key", &concordv1.GetRequest{}, false},
		{"get long key", &concordv1.GetRequest{Key: long}, false},
		{"get control char", &concordv1.GetRequest{Key: "a\nb"}, false},
		{"get C1 control char", &concordv1.GetRequest{Key: "a\u0085b"}, false},
		{"get DEL", &concordv1.GetRequest{Key: "a\x7fb"}, false},
		{"get undefined consistency", &concordv1.GetRequest{Key: "k", Consistency: 99}, false},
		{"batch get", &concordv1.BatchGetRequest{Keys: keys(500)}, true},
		{"batch get empty", &concordv1.BatchGetRequest{}, false},
		{"batch get 501", &concordv1.BatchGetRequest{Keys: keys(501)}, false},
		{"batch get bad key", &concordv1.BatchGetRequest{Keys: []string{"a", ""}}, false},
		{"batch get undefined consistency", &concordv1.BatchGetRequest{Keys: []string{"a"}, Consistency: -1}, false},
		{"put", &concordv1.PutRequest{Key: "k", Value: make([]byte, 1048576), TtlSeconds: 315360000, ContentType: strings.Repeat("t", 128), Compress: concordv1.CompressMode_COMPRESS_MODE_FORCE, IfAbsent: true}, true},
		{"put big value", &concordv1.PutRequest{Key: "k", Value: make([]byte, 1048577)}, false},
		{"put negative ttl", &concordv1.PutRequest{Key: "k", TtlSeconds: -1}, false},
		{"put long ttl", &concordv1.PutRequest{Key: "k", TtlSeconds: 315360001}, false},
		{"put long content type", &concordv1.PutRequest{Key: "k", ContentType: strings.Repeat("t", 129)}, false},
		{"put undefined compress", &concordv1.PutRequest{Key: "k", Compress: 42}, false},
		{"put bad key", &concordv1.PutRequest{Key: "\x00"}, false},
		{"batch put", &concordv1.BatchPutRequest{Items: items(500)}, true},
		{"batch put empty", &concordv1.BatchPutRequest{}, false},
		{"batch put 501", &concordv1.BatchPutRequest{Items: items(501)}, false},
		{"batch put bad item", &concordv1.BatchPutRequest{Items: []*concordv1.PutItem{{Key: "a"}, {Key: "b", TtlSeconds: -5}}}, false},
		{"other request", &concordv1.DeleteRequest{Key: "k"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast := plainlyValid(tc.msg)
			if fast != tc.fast {
				t.Errorf("plainlyValid = %v, want %v", fast, tc.fast)
			}
			if err := slowValidate(t, tc.msg); fast && err != nil {
				t.Errorf("fast path passed a request protovalidate rejects: %v", err)
			}
		})
	}
}

// slowValidate runs msg through connectrpc.com/validate, the interceptor the
// fast path stands in for.
func slowValidate(t *testing.T, msg proto.Message) error {
	t.Helper()
	switch m := msg.(type) {
	case *concordv1.GetRequest:
		return viaInterceptor(m)
	case *concordv1.BatchGetRequest:
		return viaInterceptor(m)
	case *concordv1.PutRequest:
		return viaInterceptor(m)
	case *concordv1.BatchPutRequest:
		return viaInterceptor(m)
	case *concordv1.DeleteRequest:
		return viaInterceptor(m)
	}
	t.Fatalf("no case for %T", msg)
	return nil
}

func viaInterceptor[T any](m *T) error {
	next := func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) {
		return connect.NewResponse(&concordv1.PutResponse{}), nil
	}
	_, err := validate.NewInterceptor().WrapUnary(next)(context.Background(), connect.NewRequest(m))
	return err
}
