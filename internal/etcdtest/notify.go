package etcdtest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Notification is one sd_notify datagram and when it arrived.
type Notification struct {
	At    time.Time
	State string
}

// NotifySocket is a real unixgram socket standing in for systemd's.
type NotifySocket struct {
	Path string
	conn *net.UnixConn
	mu   sync.Mutex
	msgs []Notification
	// hook, if set, runs in the reader goroutine as each message arrives.
	hook func(Notification)
}

// NewNotifySocket listens on a fresh socket; closed at test end. The
// directory is short-named because socket paths are limited to 108 bytes.
func NewNotifySocket(t testing.TB, hook func(Notification)) *NotifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s := &NotifySocket{Path: path, conn: conn, hook: hook}
	t.Cleanup(func() { conn.Close() })
	go s.read()
	return s
}

func (s *NotifySocket) read() {
	buf := make([]byte, 64*1024)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return
		}
		msg := Notification{At: time.Now(), State: string(buf[:n])}
		if s.hook != nil {
			s.hook(msg)
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, msg)
		s.mu.Unlock()
	}
}

// Env returns the variable that points a child at this socket.
func (s *NotifySocket) Env() string { return "NOTIFY_SOCKET=" + s.Path }

// Messages returns every datagram received so far.
func (s *NotifySocket) Messages() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.msgs...)
}

// Assignments returns every KEY=VALUE line received, in order.
func (s *NotifySocket) Assignments() []string {
	var out []string
	for _, m := range s.Messages() {
		out = append(out, strings.Split(m.State, "\n")...)
	}
	return out
}

// Statuses returns the values of every STATUS= line, in order.
func (s *NotifySocket) Statuses() []string {
	var out []string
	for _, a := range s.Assignments() {
		if v, ok := strings.CutPrefix(a, "STATUS="); ok {
			out = append(out, v)
		}
	}
	return out
}

// Count returns how many lines equal line.
func (s *NotifySocket) Count(line string) int {
	n := 0
	for _, a := range s.Assignments() {
		if a == line {
			n++
		}
	}
	return n
}

// WaitFor polls until some received line satisfies match or d passes.
func (s *NotifySocket) WaitFor(d time.Duration, match func(line string) bool) bool {
	return Eventually(d, 20*time.Millisecond, func() bool {
		for _, a := range s.Assignments() {
			if match(a) {
				return true
			}
		}
		return false
	})
}
