package concord_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// TestListPageHandsOutCursors reads a prefix page by page, as the gateway
// does for REST and the web console.
func TestListPageHandsOutCursors(t *testing.T) {
	cl := newClient(t, cluster(t).URLs())
	ctx := t.Context()
	var want []string
	for i := range 5 {
		key := fmt.Sprintf("page/%d", i)
		want = append(want, key)
		if _, err := cl.Put(ctx, key, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	cursor, pages := "", 0
	for {
		p, err := cl.ListPage(ctx, "page/", cursor, concord.WithPageSize(2), concord.KeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		if p.Revision == 0 || p.Node == "" {
			t.Errorf("page %d: revision %d node %q", pages, p.Revision, p.Node)
		}
		for _, kv := range p.KVs {
			got = append(got, kv.Key)
		}
		pages++
		if p.NextCursor == "" || pages > 5 {
			break
		}
		cursor = p.NextCursor
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Errorf("listed %v in %d pages, want %v in 3", got, pages, want)
	}
	if _, err := cl.ListPage(ctx, "page/", "!!not-a-cursor"); !errors.Is(err, concord.ErrInvalidArgument) {
		t.Errorf("bad cursor: %v, want ErrInvalidArgument", err)
	}
}

// TestResultsNameTheServingNode covers the Node of every write result and
// GetMany's remaining TTLs.
func TestResultsNameTheServingNode(t *testing.T) {
	cl := newClient(t, cluster(t).URLs())
	ctx := t.Context()
	force := true
	if _, err := cl.PutMany(ctx, []concord.Item{
		{Key: "node:a", Value: []byte(strings.Repeat("a", 4096)), TTL: time.Minute, Compress: &force},
		{Key: "node:b", Value: []byte("b")},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := cl.GetMany(ctx, []string{"node:a", "node:b"}, concord.WithRemainingTTL())
	if err != nil {
		t.Fatal(err)
	}
	if got.Node == "" || len(got.KVs) != 2 || got.KVs[0].TTL <= 0 || got.KVs[0].TTL > time.Minute || got.KVs[1].TTL != 0 {
		t.Errorf("GetMany = %+v", got)
	}
	st, err := cl.CompressionStats(ctx, "node:a")
	if err != nil {
		t.Fatal(err)
	}
	if st.Algorithm == "none" || st.OriginalSize != 4096 || st.CompressedSize >= 4096 || st.Node == "" {
		t.Errorf("CompressionStats(forced) = %+v", st)
	}
	if _, err := cl.CompressionStats(ctx, "node:missing"); !errors.Is(err, concord.ErrNotFound) {
		t.Errorf("CompressionStats(missing): %v, want ErrNotFound", err)
	}
	est, err := cl.EstimateCompression(ctx, []byte(strings.Repeat("x", 10_000)))
	if err != nil || est.OriginalSize != 10_000 || est.SavingsBytes <= 0 {
		t.Errorf("EstimateCompression = %+v, %v", est, err)
	}
	tm, err := cl.TouchMany(ctx, []concord.TouchItem{{Key: "node:b", TTL: time.Minute}})
	if err != nil || tm.Node == "" {
		t.Errorf("TouchMany = %+v, %v", tm, err)
	}
	dm, err := cl.DeleteMany(ctx, []string{"node:a"})
	if err != nil || dm.Node == "" || dm.Deleted != 1 {
		t.Errorf("DeleteMany = %+v, %v", dm, err)
	}
	d, err := cl.Delete(ctx, "node:b")
	if err != nil || d.Node == "" || !d.Deleted {
		t.Errorf("Delete = %+v, %v", d, err)
	}
}
