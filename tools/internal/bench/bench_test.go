package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/concord-kv/concord/sdk/go/concordtest"
)

func TestLoadValidate(t *testing.T) {
	ok := Load{Workload: WorkloadPut, Clients: 1, Duration: time.Second, Keys: 10, KeySize: 8, BatchSize: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Load){
		"workload":   func(l *Load) { l.Workload = "scan" },
		"clients":    func(l *Load) { l.Clients = 0 },
		"no stop":    func(l *Load) { l.Duration = 0 },
		"key size":   func(l *Load) { l.Keys, l.KeySize = 1000, 3 },
		"value size": func(l *Load) { l.ValueSize = 2 << 20 },
		"ratio":      func(l *Load) { l.ReadRatio = 1.5 },
		"batch":      func(l *Load) { l.BatchSize = 501 },
		"ttl":        func(l *Load) { l.Workload, l.TTL = WorkloadPutTTL, 0 },
	} {
		l := ok
		mut(&l)
		if err := l.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, l)
		}
	}
}

func TestKeyHasFixedSize(t *testing.T) {
	for _, i := range []int{0, 7, 9999999} {
		if k := Key(i, 8); len(k) != 8 {
			t.Errorf("Key(%d, 8) = %q", i, k)
		}
	}
}

// TestMeasureAgainstACluster runs every workload through the SDK driver for
// a fixed number of operations and checks the counts, not the speed.
func TestMeasureAgainstACluster(t *testing.T) {
	c := concordtest.Start(t, 1)
	d, err := NewDriver(t.Context(), "sdk", c.URLs(), "strong", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	base := Load{Clients: 4, Ops: 40, Keys: 50, KeySize: 8, ValueSize: 32, ReadRatio: 0.5, BatchSize: 10, TTL: time.Minute, Seed: 7}
	if err := Preload(t.Context(), d, base); err != nil {
		t.Fatal(err)
	}
	for _, wl := range Workloads {
		l := base
		l.Workload = wl
		r, err := Measure(t.Context(), d, l)
		if err != nil {
			t.Fatalf("%s: %v", wl, err)
		}
		if r.Ops != l.Ops || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Fatalf("%s: %+v", wl, r)
		}
		var out bytes.Buffer
		if err := Print(&out, r); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		var back Result
		if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &back) != nil || back.Ops != r.Ops {
			t.Fatalf("%s: output %q", wl, out.String())
		}
	}
}
