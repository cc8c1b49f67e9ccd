package node

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Notifier sends sd_notify(3) messages to the service manager.
type Notifier interface {
	Notify(state string) error
}

// SystemdNotifier talks to $NOTIFY_SOCKET through go-systemd; without the
// variable (not under systemd) every message is silently dropped.
type SystemdNotifier struct{}

// Notify implements Notifier.
func (SystemdNotifier) Notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// lifecycle sends the messages of one member's life: STATUS on change,
// READY once, STOPPING once, and the start-timeout extension.
type lifecycle struct {
	n  Notifier
	lg *zap.Logger

	mu     sync.Mutex
	status string
	// phase is the status's kind (one of phases), exported as a metric.
	phase string
}

// Phases of a member's life, as etcd_appliance_phase exports them.
const (
	PhaseStarting = "starting"
	PhaseWaiting  = "waiting"
	PhaseServing  = "serving"
	PhaseStopping = "stopping"
	PhaseRemoved  = "removed"
	PhaseFailed   = "failed"
)

var phases = []string{PhaseStarting, PhaseWaiting, PhaseServing, PhaseStopping, PhaseRemoved, PhaseFailed}

// enter records the phase the next statuses belong to.
func (l *lifecycle) enter(phase string) {
	l.mu.Lock()
	l.phase = phase
	l.mu.Unlock()
}

// Phase is the member's current phase ("" before the first).
func (l *lifecycle) Phase() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.phase
}

func (l *lifecycle) send(state string) {
	if err := l.n.Notify(state); err != nil && l.lg != nil {
		l.lg.Warn("sd_notify failed", zap.String("state", firstLine(state)), zap.Error(err))
	}
}

// setStatus sends STATUS= when the text changed, and logs it: the journal
// then tells the same story as `systemctl status`.
func (l *lifecycle) setStatus(format string, args ...any) {
	l.report(zapcore.InfoLevel, format, args...)
}

// fail is setStatus for the end of a member that failed: logged at error
// level, which an orderly stop never reaches.
func (l *lifecycle) fail(format string, args ...any) {
	l.enter(PhaseFailed)
	l.report(zapcore.ErrorLevel, format, args...)
}

func (l *lifecycle) report(level zapcore.Level, format string, args ...any) {
	s := oneLine(fmt.Sprintf(format, args...))
	l.mu.Lock()
	changed := s != l.status
	l.status = s
	l.mu.Unlock()
	if !changed {
		return
	}
	if l.lg != nil {
		// The status says it all: no stack trace of this function.
		l.lg.WithOptions(zap.AddStacktrace(zapcore.FatalLevel)).Log(level, "status", zap.String("status", s))
	}
	l.send("STATUS=" + s)
}

func (l *lifecycle) ready(status string) {
	s := oneLine(status)
	l.mu.Lock()
	l.status, l.phase = s, PhaseServing
	l.mu.Unlock()
	if l.lg != nil {
		l.lg.Info("ready", zap.String("status", s))
	}
	l.send(daemon.SdNotifyReady + "\nSTATUS=" + s)
}

func (l *lifecycle) stopping(status string) {
	s := oneLine(status)
	l.mu.Lock()
	l.status, l.phase = s, PhaseStopping
	l.mu.Unlock()
	l.send(daemon.SdNotifyStopping + "\nSTATUS=" + s)
}

func (l *lifecycle) extend(d time.Duration) {
	l.send(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", d.Microseconds()))
}

func (l *lifecycle) watchdog() { l.send(daemon.SdNotifyWatchdog) }

// oneLine keeps a STATUS= value on one line: a newline would start a new
// sd_notify assignment.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
