package app

import (
	"bytes"
	"sync"
)

var outMu sync.Mutex

// syncWriter lets the test read what Run prints while Run runs.
type syncWriter struct{ buf *bytes.Buffer }

func (w *syncWriter) Write(p []byte) (int, error) {
	outMu.Lock()
	defer outMu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	outMu.Lock()
	defer outMu.Unlock()
	return w.buf.String()
}
