package backend

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that every Backend a test made stopped its goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
