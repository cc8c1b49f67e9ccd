package etcdtest

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer safe for a child process's output written while
// the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written so far.
func (l *Buffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
