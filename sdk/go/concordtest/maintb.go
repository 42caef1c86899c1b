package concordtest

import (
	"fmt"
	"os"
	"testing"
)

// MainTB is the testing.TB that Start needs in TestMain, where there is no
// *testing.T, so that one cluster can serve a whole package's tests and
// examples. It implements the methods Start and Cluster call (Helper,
// Cleanup, TempDir, Fatal, Fatalf, Log, Logf); any other method panics. A
// failure runs the cleanups and exits the test binary with status 1.
//
//	func TestMain(m *testing.M) {
//		tb := concordtest.NewMainTB("mypkg-test")
//		shared = concordtest.Start(tb, 3)
//		code := m.Run()
//		tb.Close()
//		os.Exit(code)
//	}
type MainTB struct {
	testing.TB // nil: the methods MainTB does not implement panic
	prefix     string
	cleanups   []func()
}

// NewMainTB returns a MainTB whose temporary directories are named after
// prefix.
func NewMainTB(prefix string) *MainTB { return &MainTB{prefix: prefix} }

// Close runs the cleanups, the last registered first: it stops every
// cluster started with tb.
func (tb *MainTB) Close() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
	tb.cleanups = nil
}

// Helper does nothing.
func (*MainTB) Helper() {}

// Cleanup registers f to run at Close.
func (tb *MainTB) Cleanup(f func()) { tb.cleanups = append(tb.cleanups, f) }

// TempDir makes a directory that Close removes.
func (tb *MainTB) TempDir() string {
	dir, err := os.MkdirTemp("", tb.prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Log writes to standard error.
func (*MainTB) Log(args ...any) { _, _ = fmt.Fprintln(os.Stderr, args...) }

// Logf writes to standard error.
func (*MainTB) Logf(format string, args ...any) { _, _ = fmt.Fprintf(os.Stderr, format+"\n", args...) }

// Fatal logs, runs the cleanups and exits with status 1.
func (tb *MainTB) Fatal(args ...any) {
	tb.Log(args...)
	tb.Close()
	os.Exit(1)
}

// Fatalf logs, runs the cleanups and exits with status 1.
func (tb *MainTB) Fatalf(format string, args ...any) {
	tb.Logf(format, args...)
	tb.Close()
	os.Exit(1)
}
