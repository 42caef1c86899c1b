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
	tb := concordtest.NewMainTB("concord-sdk-test")
	shared = concordtest.Start(tb, 3)
	endpoints = shared.URLs()
	code := m.Run()
	tb.Close()
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
