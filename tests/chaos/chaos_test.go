package chaos_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concord-kv/concord/sdk/go/concordtest"
	"github.com/concord-kv/concord/tests/chaos"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// settings are read from the environment (see README.md):
//
//	CHAOS_RUNS      runs of every scenario (default 1)
//	CHAOS_SECONDS   seconds of load per run (default 4)
//	CHAOS_SEED      seed of the first run; run r uses CHAOS_SEED+r (default random)
//	CHAOS_SCENARIO  only the scenarios whose name matches this regexp
//	CHAOS_OUT       where failed runs leave their evidence (default $TMPDIR/concord-chaos)
//	CHAOS_SUMMARY   write the final JSON line to this file instead of stdout
type settings struct {
	runs     int
	duration time.Duration
	seed     uint64
	filter   *regexp.Regexp
	out      string
	summary  string
}

func readSettings(t *testing.T) settings {
	t.Helper()
	s := settings{runs: 1, duration: 4 * time.Second, seed: rand.Uint64() >> 12,
		out: filepath.Join(os.TempDir(), "concord-chaos"), summary: os.Getenv("CHAOS_SUMMARY")}
	if v := os.Getenv("CHAOS_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_RUNS=%q: want a positive integer", v)
		}
		s.runs = n
	}
	if v := os.Getenv("CHAOS_SECONDS"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("CHAOS_SECONDS=%q: want a positive number of seconds", v)
		}
		s.duration = time.Duration(f * float64(time.Second))
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer", v)
		}
		s.seed = n
	}
	if v := os.Getenv("CHAOS_SCENARIO"); v != "" {
		re, err := regexp.Compile(v)
		if err != nil {
			t.Fatalf("CHAOS_SCENARIO=%q: %v", v, err)
		}
		s.filter = re
	}
	if v := os.Getenv("CHAOS_OUT"); v != "" {
		s.out = v
	}
	return s
}

// failpointBinary returns the replica built with -tags failpoints (and
// -race): CHAOS_FAILPOINT_BIN, or a build from this source tree.
func failpointBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("CHAOS_FAILPOINT_BIN"); bin != "" {
		return bin
	}
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "replica-failpoints")
	cmd := exec.Command("go", "build", "-race", "-tags", "failpoints", "-o", bin, "./cmd/replica")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..", "services", "replica")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the failpoint replica in %s: %v\n%s", cmd.Dir, err, out)
	}
	return bin
}

// Summary is the suite's last line.
type Summary struct {
	Scenarios       int    `json:"scenarios"`
	Runs            int    `json:"runs"`
	Violations      int    `json:"violations"`
	LostAckedWrites int    `json:"lost_acked_writes"`
	Seed            uint64 `json:"seed"`
}

// TestChaos runs every scenario CHAOS_RUNS times (once, briefly, by
// default: that is what `make test` does) and fails on any violation, lost
// acknowledged write, inconclusive check or harness error.
func TestChaos(t *testing.T) {
	s := readSettings(t)
	bin := concordtest.ReplicaBinary(t)
	var scenarios []chaos.Scenario
	for _, sc := range chaos.Scenarios() {
		if s.filter == nil || s.filter.MatchString(sc.Name) {
			scenarios = append(scenarios, sc)
		}
	}
	if len(scenarios) == 0 {
		t.Fatalf("CHAOS_SCENARIO=%q matches no scenario", s.filter)
	}
	var fpBin string
	for _, sc := range scenarios {
		if sc.Failpoints {
			fpBin = failpointBinary(t)
			break
		}
	}
	sum := Summary{Scenarios: len(scenarios), Seed: s.seed}
	for r := range s.runs {
		seed := s.seed + uint64(r)
		for _, sc := range scenarios {
			t.Run(sc.Name, func(t *testing.T) {
				res := chaos.Run(t.Context(), sc, chaos.RunConfig{
					Bin: bin, FailpointBin: fpBin, Seed: seed, Duration: s.duration, Dir: t.TempDir(), OutDir: s.out,
					CheckTimeout: 2 * time.Minute, Logf: t.Logf,
				})
				fmt.Println(res.Line())
				sum.Runs++
				sum.Violations += len(res.Violations)
				sum.LostAckedWrites += len(res.Lost)
				if !res.Failed() {
					return
				}
				var b strings.Builder
				fmt.Fprintf(&b, "%s (rerun: CHAOS_SEED=%d CHAOS_RUNS=1 CHAOS_SCENARIO='^%s$')\n", res.Line(), res.Seed, sc.Name)
				if sc.Bug != "" {
					fmt.Fprintf(&b, "  this is the regression scenario of %s\n", sc.Bug)
				}
				for _, v := range res.Violations {
					fmt.Fprintf(&b, "  violation: %s\n", v)
				}
				for _, k := range res.Lost {
					fmt.Fprintf(&b, "  lost acknowledged write: %s\n", k)
				}
				for _, k := range res.Inconclusive {
					fmt.Fprintf(&b, "  inconclusive: %s\n", k)
				}
				for _, e := range res.Errors {
					fmt.Fprintf(&b, "  error: %s\n", e)
				}
				if res.Artifacts != "" {
					fmt.Fprintf(&b, "  evidence: %s (history.html is porcupine's visualization)\n", res.Artifacts)
				}
				t.Error(b.String())
			})
		}
	}
	line, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	if s.summary == "" {
		fmt.Println(string(line))
		return
	}
	// make test-chaos prints the file after go test's own last lines.
	if err := os.WriteFile(s.summary, append(line, '\n'), 0o644); err != nil {
		t.Error(err)
	}
}
