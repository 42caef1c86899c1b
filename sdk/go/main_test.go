package concord_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/concord-kv/concord/sdk/go/concordtest"
)

// shared is one 3-replica cluster for the tests that do not kill replicas
// and for the examples. TestMain starts it before any test runs and kills
// it when they are done.
var shared *concordtest.Cluster

// endpoints are the shared cluster's replica URLs. The examples connect to
// them, as a program would to its own cluster's addresses.
var endpoints []string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tb := &mainTB{}
	shared = concordtest.Start(tb, 3)
	endpoints = shared.URLs()
	code := m.Run()
	tb.runCleanups()
	// Every client the tests and examples made is closed by now, and with
	// it every lock keepalive and registration heartbeat.
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

// cluster returns the shared cluster.
func cluster(t *testing.T) *concordtest.Cluster {
	t.Helper()
	return shared
}

// mainTB is the testing.TB concordtest needs to start the shared cluster
// in TestMain, where there is no *testing.T: it implements the methods
// concordtest calls (Helper, Cleanup, TempDir, Fatal, Fatalf, Log, Logf),
// and a failure stops the test binary.
type mainTB struct {
	testing.TB // nil: any other method panics
	cleanups   []func()
}

func (*mainTB) Helper() {}

func (tb *mainTB) Cleanup(f func()) { tb.cleanups = append(tb.cleanups, f) }

func (tb *mainTB) runCleanups() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	tb.cleanups = nil
}

func (tb *mainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "concord-sdk-test")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (*mainTB) Log(args ...any) { fmt.Fprintln(os.Stderr, args...) }

func (*mainTB) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (tb *mainTB) Fatal(args ...any) {
	tb.Log(args...)
	tb.runCleanups()
	os.Exit(1)
}

func (tb *mainTB) Fatalf(format string, args ...any) {
	tb.Logf(format, args...)
	tb.runCleanups()
	os.Exit(1)
}
