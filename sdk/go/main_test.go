package concord_test

import (
	"os"
	"testing"
)

// sharedTB lets the shared cluster outlive the test that started it: its
// replicas are killed when the test binary exits (TestMain).
type sharedTB struct {
	*testing.T
	cleanups []func()
}

func (s *sharedTB) Cleanup(f func()) { s.cleanups = append(s.cleanups, f) }

func (s *sharedTB) TempDir() string {
	dir, err := os.MkdirTemp("", "concord-sdk-test")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// sharedCleanups holds the shared cluster's cleanups, run by TestMain.
var sharedCleanups *sharedTB

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCleanups != nil {
		for i := len(sharedCleanups.cleanups) - 1; i >= 0; i-- {
			sharedCleanups.cleanups[i]()
		}
	}
	os.Exit(code)
}
