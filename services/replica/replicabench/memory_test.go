package replicabench

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"connectrpc.com/connect"
	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/concord-kv/concord/proto/gen/go/concord/v1/concordv1connect"
	"github.com/concord-kv/concord/services/replica/replicatest"
)

var (
	replicaKeys = flag.Int("replica-keys", 20000, "keys BenchmarkReplicaMemory loads")
	heapProfile = flag.String("heap-profile", "", "where BenchmarkReplicaMemory writes the heap profile taken after the load")
)

// BenchmarkReplicaMemory starts an in-process one-replica cluster, loads
// -replica-keys keys of 16 B with 100 B values through the API in bulk puts
// of 500, and reports the Go heap they added per key after a GC
// (heap-B/key) and that minus the raw bytes (overhead-B/key): the FSM plus
// everything else the replica keeps (the Raft log cache among them). With
// -heap-profile it writes the heap profile taken at that point:
//
//	go test -run '^$' -bench ReplicaMemory ./replicabench -args -replica-keys 1000000 -heap-profile heap.pprof
func BenchmarkReplicaMemory(b *testing.B) {
	const keySize, valueSize, batch = 16, 100, 500
	keys := *replicaKeys
	value := make([]byte, valueSize)
	for b.Loop() {
		c := replicatest.Start(b, 1)
		c.WaitLeader(time.Minute)
		kv := concordv1connect.NewKVServiceClient(http.DefaultClient, c.Addr(0))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for first := 0; first < keys; first += batch {
			req := &concordv1.BatchPutRequest{}
			for i := first; i < min(first+batch, keys); i++ {
				req.Items = append(req.Items, &concordv1.PutItem{Key: fmt.Sprintf("k%0*d", keySize-1, i), Value: value})
			}
			if _, err := kv.BatchPut(b.Context(), connect.NewRequest(req)); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perKey := float64(after.HeapAlloc-before.HeapAlloc) / float64(keys)
		b.ReportMetric(perKey, "heap-B/key")
		b.ReportMetric(perKey-keySize-valueSize, "overhead-B/key")
		if *heapProfile != "" {
			f, err := os.Create(*heapProfile)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
