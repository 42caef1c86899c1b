package server

import (
	"fmt"
	"strings"
	"testing"

	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fastPathRules are the protovalidate rules of the requests plainlyValid
// shortcuts, as kv.proto declares them. If this test fails, kv.proto's rules
// for these messages changed: make plainlyValid check the new rules (and
// TestPlainlyValidAgreesWithProtovalidate cover them), then update this.
const fastPathRules = `
GetRequest -
  key field{string:{min_bytes:1max_bytes:512pattern:"^[^\\x00-\\x1f\\x7f-\\x9f]+$"}}
  consistency field{enum:{defined_only:true}}
  with_ttl -
  min_revision -
BatchGetRequest -
  keys field{repeated:{min_items:1max_items:500items:{string:{min_bytes:1max_bytes:512pattern:"^[^\\x00-\\x1f\\x7f-\\x9f]+$"}}}}
  consistency field{enum:{defined_only:true}}
  with_ttl -
  min_revision -
PutRequest -
  key field{string:{min_bytes:1max_bytes:512pattern:"^[^\\x00-\\x1f\\x7f-\\x9f]+$"}}
  value field{bytes:{max_len:1048576}}
  ttl_seconds field{int64:{lte:315360000gte:0}}
  content_type field{string:{max_bytes:128}}
  compress field{enum:{defined_only:true}}
  if_absent -
  if_mod_revision -
BatchPutRequest -
  items field{repeated:{min_items:1max_items:500}}
PutItem -
  key field{string:{min_bytes:1max_bytes:512pattern:"^[^\\x00-\\x1f\\x7f-\\x9f]+$"}}
  value field{bytes:{max_len:1048576}}
  ttl_seconds field{int64:{lte:315360000gte:0}}
  content_type field{string:{max_bytes:128}}
  compress field{enum:{defined_only:true}}
`

// TestFastPathRulesUnchanged keeps plainlyValid from drifting from
// kv.proto: the fast path accepts requests without protovalidate, so a rule
// added to the proto must be added to it too.
func TestFastPathRulesUnchanged(t *testing.T) {
	var b strings.Builder
	for _, m := range []proto.Message{
		&concordv1.GetRequest{}, &concordv1.BatchGetRequest{}, &concordv1.PutRequest{},
		&concordv1.BatchPutRequest{}, &concordv1.PutItem{},
	} {
		md := m.ProtoReflect().Descriptor()
		fmt.Fprintf(&b, "%s %s\n", md.Name(), rulesText(md.Options()))
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			fmt.Fprintf(&b, "  %s %s\n", fd.Name(), rulesText(fd.Options()))
		}
	}
	if got := strings.TrimSpace(b.String()); got != strings.TrimSpace(fastPathRules) {
		t.Errorf("the rules of the fast-path requests changed; check plainlyValid, then set fastPathRules to:\n%s", got)
	}
}

func rulesText(opts proto.Message) string {
	if opts == nil || !opts.ProtoReflect().IsValid() {
		return "-"
	}
	var parts []string
	opts.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsExtension() && strings.HasPrefix(string(fd.FullName()), "buf.validate.") {
			if msg, ok := v.Interface().(protoreflect.Message); ok {
				// Without blanks: prototext varies its spacing on purpose.
				parts = append(parts, string(fd.Name())+"{"+strings.Join(strings.Fields(prototext.Format(msg.Interface())), "")+"}")
			}
		}
		return true
	})
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}
