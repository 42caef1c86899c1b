package compress

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	concordv1 "github.com/concord-kv/concord/proto/gen/go/concord/v1"
	"github.com/google/go-cmp/cmp"
)

const (
	modeDefault = concordv1.CompressMode_COMPRESS_MODE_UNSPECIFIED
	modeForce   = concordv1.CompressMode_COMPRESS_MODE_FORCE
	modeOff     = concordv1.CompressMode_COMPRESS_MODE_OFF
)

func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func jsonish(n int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","roles":["reader","writer"],"active":true},`, i, i%17)
	}
	return []byte(b.String()[:n])
}

func mustNew(tb testing.TB, cfg Config) *Compressor {
	tb.Helper()
	c, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}
	return c
}

// levels lists every valid level of an algorithm.
func levels(a Algorithm) []int {
	if a == Zstd {
		return []int{-1, 0, 1, 2, 3, 4}
	}
	return []int{-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
}

func TestRoundTripEveryAlgorithmAndLevel(t *testing.T) {
	inputs := map[string][]byte{
		"empty":       {},
		"one byte":    {'x'},
		"json 3 KiB":  jsonish(3 << 10),
		"x 10000":     bytes.Repeat([]byte("x"), 10_000),
		"random 4K":   randomBytes(1, 4<<10),
		"json 64 KiB": jsonish(64 << 10),
	}
	for _, algo := range []Algorithm{Zlib, Gzip, Zstd} {
		for _, level := range levels(algo) {
			c := mustNew(t, Config{Enabled: true, Algorithm: algo, Level: level, ThresholdBytes: 0})
			for name, in := range inputs {
				t.Run(fmt.Sprintf("%s/%d/%s", Name(algo), level, name), func(t *testing.T) {
					for _, mode := range []Mode{modeDefault, modeForce} {
						stored, got, err := c.Encode(in, mode)
						if err != nil {
							t.Fatalf("encode %v: %v", mode, err)
						}
						if mode == modeForce && got != algo {
							t.Fatalf("forced encode stored as %v, want %v", got, algo)
						}
						out, err := Decode(stored, got, len(in))
						if err != nil {
							t.Fatalf("decode %v: %v", mode, err)
						}
						if !bytes.Equal(in, out) {
							t.Fatalf("round trip %v changed the value (%d bytes in, %d out)", mode, len(in), len(out))
						}
					}
				})
			}
		}
	}
}

func TestRoundTripLargestValue(t *testing.T) {
	in := jsonish(1 << 20)
	for _, algo := range []Algorithm{Zlib, Gzip, Zstd} {
		t.Run(Name(algo), func(t *testing.T) {
			stored := mustEncode(t, algo, in)
			out, err := Decode(stored, algo, len(in))
			if err != nil || !bytes.Equal(in, out) {
				t.Fatalf("1 MiB round trip: %v", err)
			}
		})
	}
}

func TestEncodeDecides(t *testing.T) {
	big := jsonish(4 << 10)
	atThreshold := jsonish(DefaultThreshold)
	overThreshold := jsonish(DefaultThreshold + 1)
	noise := randomBytes(2, 4<<10)
	on := DefaultConfig()
	off := DefaultConfig()
	off.Enabled = false
	none := DefaultConfig()
	none.Algorithm = None
	zstd := DefaultConfig()
	zstd.Algorithm = Zstd
	zstd.Level = -1
	store0 := DefaultConfig()
	store0.Level = 0 // zlib "store": output is never smaller

	tests := []struct {
		name  string
		cfg   Config
		value []byte
		mode  Mode
		want  Algorithm
	}{
		{"at the threshold stays raw", on, atThreshold, modeDefault, None},
		{"over the threshold compresses", on, overThreshold, modeDefault, Zlib},
		{"configured algorithm is used", zstd, big, modeDefault, Zstd},
		{"off mode keeps a big value raw", on, big, modeOff, None},
		{"force compresses a small value", on, []byte("tiny"), modeForce, Zlib},
		{"disabled stays raw", off, big, modeDefault, None},
		{"disabled but forced compresses", off, big, modeForce, Zlib},
		{"algorithm none ignores force", none, big, modeForce, None},
		{"incompressible data is stored raw", on, noise, modeDefault, None},
		{"incompressible data forced is compressed", on, noise, modeForce, Zlib},
		{"level 0 output is not smaller: raw", store0, big, modeDefault, None},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mustNew(t, tc.cfg)
			stored, algo, err := c.Encode(tc.value, tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			if algo != tc.want {
				t.Fatalf("algorithm %v, want %v", algo, tc.want)
			}
			if algo == None && !bytes.Equal(stored, tc.value) {
				t.Fatal("a value stored raw was changed")
			}
			if algo != None && tc.mode != modeForce && len(stored) >= len(tc.value) {
				t.Fatalf("kept a compressed form of %d bytes for a %d-byte value", len(stored), len(tc.value))
			}
			out, err := Decode(stored, algo, len(tc.value))
			if err != nil || !bytes.Equal(out, tc.value) {
				t.Fatalf("decode: %v", err)
			}
		})
	}
}

func TestDecodeCorruptInput(t *testing.T) {
	value := jsonish(8 << 10)
	for _, algo := range []Algorithm{Zlib, Gzip, Zstd} {
		c := mustNew(t, Config{Enabled: true, Algorithm: algo, Level: -1})
		good, _, err := c.Encode(value, modeForce)
		if err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0xff
		badTrailer := bytes.Clone(good)
		badTrailer[len(badTrailer)-1] ^= 0x01
		cases := map[string][]byte{
			"empty":          {},
			"garbage":        randomBytes(3, 512),
			"text":           []byte("not compressed at all"),
			"truncated":      good[:len(good)/2],
			"header only":    good[:min(6, len(good))],
			"flipped byte":   flipped,
			"bad checksum":   badTrailer,
			"other algo":     mustEncode(t, otherAlgo(algo), value),
			"repeated magic": bytes.Repeat(good[:4], 64),
		}
		for name, in := range cases {
			t.Run(Name(algo)+"/"+name, func(t *testing.T) {
				out, err := Decode(in, algo, 1<<20)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Decode = %d bytes, %v; want ErrCorrupt", len(out), err)
				}
			})
		}
	}
	t.Run("unknown algorithm", func(t *testing.T) {
		if _, err := Decode([]byte("x"), Algorithm(99), 10); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	})
	t.Run("raw values are returned as stored", func(t *testing.T) {
		for _, algo := range []Algorithm{None, concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_UNSPECIFIED} {
			if out, err := Decode([]byte("raw"), algo, 10); err != nil || string(out) != "raw" {
				t.Fatalf("%v: %q %v", algo, out, err)
			}
		}
	})
}

func otherAlgo(a Algorithm) Algorithm {
	if a == Zstd {
		return Zlib
	}
	return Zstd
}

func mustEncode(tb testing.TB, algo Algorithm, value []byte) []byte {
	tb.Helper()
	out, _, err := mustNew(tb, Config{Algorithm: algo, Level: -1}).Encode(value, modeForce)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestDecodeEnforcesMaxSize(t *testing.T) {
	value := bytes.Repeat([]byte("x"), 10_000)
	for _, algo := range []Algorithm{Zlib, Gzip, Zstd} {
		t.Run(Name(algo), func(t *testing.T) {
			stored := mustEncode(t, algo, value)
			if out, err := Decode(stored, algo, len(value)); err != nil || len(out) != len(value) {
				t.Fatalf("at the limit: %d bytes, %v", len(out), err)
			}
			if _, err := Decode(stored, algo, len(value)-1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("one byte over the limit: %v, want ErrCorrupt", err)
			}
			// A bomb: 4 MiB of zeros compresses to a few KiB.
			bomb := mustEncode(t, algo, make([]byte, 4<<20))
			if _, err := Decode(bomb, algo, 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decompression bomb: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestStats(t *testing.T) {
	x := bytes.Repeat([]byte("x"), 10_000)
	for _, algo := range []Algorithm{Zlib, Gzip, Zstd} {
		t.Run(Name(algo), func(t *testing.T) {
			st, err := mustNew(t, Config{Enabled: true, Algorithm: algo, Level: -1, ThresholdBytes: DefaultThreshold}).Stats(x)
			if err != nil {
				t.Fatal(err)
			}
			if st.Algorithm != algo || st.OriginalSize != 10_000 || st.CompressedSize <= 0 || st.CompressedSize >= 1_000 {
				t.Fatalf("stats %+v", st)
			}
			if st.SavingsPercent <= 90 {
				t.Fatalf("savings %.2f%%, want > 90%%", st.SavingsPercent)
			}
			if st.SavingsBytes != st.OriginalSize-st.CompressedSize {
				t.Fatalf("savings bytes %d, want %d", st.SavingsBytes, st.OriginalSize-st.CompressedSize)
			}
			if sum := st.RatioPercent + st.SavingsPercent; sum < 99.99 || sum > 100.01 {
				t.Fatalf("ratio %.2f + savings %.2f = %.2f, want 100", st.RatioPercent, st.SavingsPercent, sum)
			}
		})
	}
	t.Run("small values are measured too", func(t *testing.T) {
		st, err := mustNew(t, DefaultConfig()).Stats([]byte("tiny"))
		if err != nil || st.OriginalSize != 4 || st.CompressedSize == 0 {
			t.Fatalf("%+v %v", st, err)
		}
	})
	tests := []struct {
		name       string
		algo       Algorithm
		orig, comp int
		want       Stats
	}{
		{"half", Zlib, 1000, 500, Stats{Algorithm: Zlib, OriginalSize: 1000, CompressedSize: 500, RatioPercent: 50, SavingsBytes: 500, SavingsPercent: 50}},
		{"rounded to two places", Gzip, 3, 1, Stats{Algorithm: Gzip, OriginalSize: 3, CompressedSize: 1, RatioPercent: 33.33, SavingsBytes: 2, SavingsPercent: 66.67}},
		{"growth is negative savings", Zstd, 10, 19, Stats{Algorithm: Zstd, OriginalSize: 10, CompressedSize: 19, RatioPercent: 190, SavingsBytes: -9, SavingsPercent: -90}},
		{"empty value has no ratio", None, 0, 0, Stats{Algorithm: None}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, StatsOf(tc.algo, tc.orig, tc.comp)); diff != "" {
				t.Fatalf("StatsOf (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("algorithm none", func(t *testing.T) {
		st, err := mustNew(t, Config{Algorithm: None}).Stats(x)
		if err != nil || st.CompressedSize != len(x) || st.SavingsBytes != 0 {
			t.Fatalf("%+v %v", st, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		fail bool
	}{
		{DefaultConfig(), false},
		{Config{Algorithm: Zlib, Level: -1}, false},
		{Config{Algorithm: Zlib, Level: 9}, false},
		{Config{Algorithm: Zlib, Level: 10}, true},
		{Config{Algorithm: Gzip, Level: -2}, true},
		{Config{Algorithm: Zstd, Level: 4}, false},
		{Config{Algorithm: Zstd, Level: 5}, true},
		{Config{Algorithm: None, Level: 42}, false},
		{Config{Algorithm: Algorithm(99)}, true},
		{Config{Algorithm: concordv1.CompressionAlgorithm_COMPRESSION_ALGORITHM_UNSPECIFIED}, true},
		{Config{Algorithm: Zlib, ThresholdBytes: -1}, true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s level %d threshold %d", Name(tc.cfg.Algorithm), tc.cfg.Level, tc.cfg.ThresholdBytes), func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err != nil) != tc.fail {
				t.Fatalf("Validate = %v, want failure %v", err, tc.fail)
			}
			if _, err := New(tc.cfg); (err != nil) != tc.fail {
				t.Fatalf("New = %v, want failure %v", err, tc.fail)
			}
		})
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]Algorithm{"zlib": Zlib, " GZIP ": Gzip, "zstd": Zstd, "none": None, "off": None} {
		got, err := ParseAlgorithm(in)
		if err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in == "off" {
			continue
		}
		if back, _ := ParseAlgorithm(Name(got)); back != got {
			t.Errorf("Name(%v) = %q does not parse back", got, Name(got))
		}
	}
	for _, in := range []string{"", "lz4", "zlib9"} {
		if _, err := ParseAlgorithm(in); err == nil {
			t.Errorf("ParseAlgorithm(%q) succeeded", in)
		}
	}
}

// TestConcurrentUse shares one Compressor between goroutines, as the server
// does; run with -race.
func TestConcurrentUse(t *testing.T) {
	for _, algo := range []Algorithm{Zlib, Gzip, Zstd} {
		t.Run(Name(algo), func(t *testing.T) {
			c := mustNew(t, Config{Enabled: true, Algorithm: algo, Level: -1, ThresholdBytes: 16})
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 20 {
						in := jsonish(512 + 97*g + i)
						stored, a, err := c.Encode(in, modeDefault)
						if err != nil {
							t.Error(err)
							return
						}
						out, err := Decode(stored, a, len(in))
						if err != nil || !bytes.Equal(in, out) {
							t.Errorf("round trip: %v", err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
