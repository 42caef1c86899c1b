package gateway_test

import (
	"encoding/base64"
	"testing"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/google/go-cmp/cmp"
)

type profile struct {
	Name  string   `json:"name"`
	Roles []string `json:"roles"`
	Age   int      `json:"age"`
}

// TestSDKAndRESTReadEachOthersValues: a value written through the SDK reads
// back identically through REST and the other way round, content type kept.
func TestSDKAndRESTReadEachOthersValues(t *testing.T) {
	c, base := start(t)
	cl, err := concord.New(t.Context(), c.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	typed := concord.NewTyped[profile](cl, nil)
	want := profile{Name: "Alice", Roles: []string{"admin"}, Age: 42}

	// SDK (Typed, JSON) → REST.
	if _, err := typed.Put(t.Context(), "user:1001", want); err != nil {
		t.Fatal(err)
	}
	g := get(t, base, "user:1001")
	// REST inlines JSON values (no "encoding"); only other types carry a content_type.
	if g.Encoding != "" || compact(t, string(g.Value)) != `{"name":"Alice","roles":["admin"],"age":42}` {
		t.Fatalf("REST GET of an SDK value = %+v (value %s)", g, g.Value)
	}

	// REST → SDK (Typed).
	put(t, base, "user:1002", `{"value": {"name": "Bob", "roles": ["ops", "dev"], "age": 7}}`)
	got, kv, err := typed.Get(t.Context(), "user:1002", concord.Consistency(concord.Strong))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(profile{Name: "Bob", Roles: []string{"ops", "dev"}, Age: 7}, got); diff != "" || kv.ContentType != "application/json" {
		t.Fatalf("SDK read of a REST value (-want +got):\n%s content type %q", diff, kv.ContentType)
	}

	// SDK raw bytes → REST base64 with the content type → SDK bytes.
	raw := []byte{0, 0xff, 'o', 'k'}
	if _, err := cl.Put(t.Context(), "blob:1", raw); err != nil {
		t.Fatal(err)
	}
	g = get(t, base, "blob:1")
	if g.Encoding != "base64" || g.ContentType != concord.ContentTypeBytes || string(g.Value) != `"`+base64.StdEncoding.EncodeToString(raw)+`"` {
		t.Fatalf("REST GET of SDK bytes = %+v", g)
	}
	back, err := cl.Get(t.Context(), "blob:1")
	if err != nil || string(back.Value) != string(raw) {
		t.Fatalf("SDK GET of its bytes = %v, %v", back, err)
	}
}
