package concord_test

import (
	"fmt"
	"testing"

	concord "github.com/concord-kv/concord/sdk/go"
)

// BenchmarkConcurrentCalls measures many goroutines sharing one client,
// with and without coalescing, against the shared 3-replica cluster. With
// -cpuprofile it profiles the client side alone (the replicas are other
// processes):
//
//	GOWORK=off go test -run '^$' -bench ConcurrentCalls -benchmem -cpuprofile client.pprof .
func BenchmarkConcurrentCalls(b *testing.B) {
	const keys = 1000
	value := make([]byte, 256)
	setup, err := concord.New(b.Context(), shared.URLs())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = setup.Close() }()
	for i := 0; i < keys; i += concord.MaxBatchItems {
		items := make([]concord.Item, 0, concord.MaxBatchItems)
		for j := i; j < min(i+concord.MaxBatchItems, keys); j++ {
			items = append(items, concord.Item{Key: fmt.Sprintf("bench/%d", j), Value: value})
		}
		if _, err := setup.PutMany(b.Context(), items); err != nil {
			b.Fatal(err)
		}
	}
	for _, coalesce := range []bool{true, false} {
		for _, op := range []struct {
			name string
			call func(c *concord.Client, i int) error
		}{
			{"put", func(c *concord.Client, i int) error {
				_, err := c.Put(b.Context(), fmt.Sprintf("bench/%d", i%keys), value)
				return err
			}},
			{"strong_get", func(c *concord.Client, i int) error {
				_, err := c.Get(b.Context(), fmt.Sprintf("bench/%d", i%keys), concord.Consistency(concord.Strong))
				return err
			}},
			{"eventual_get", func(c *concord.Client, i int) error {
				_, err := c.Get(b.Context(), fmt.Sprintf("bench/%d", i%keys), concord.Consistency(concord.Eventual))
				return err
			}},
		} {
			b.Run(fmt.Sprintf("%s/coalesce=%v", op.name, coalesce), func(b *testing.B) {
				c, err := concord.New(b.Context(), shared.URLs(), concord.WithCoalescing(coalesce))
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = c.Close() }()
				b.ReportAllocs()
				b.SetParallelism(32) // 64 goroutines on 2 CPUs, as concord-bench -clients 64
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						i += 7
						if err := op.call(c, i); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
