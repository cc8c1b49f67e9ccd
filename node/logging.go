package node

import (
	"fmt"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// removedMessage is what etcdserver logs when its errorc reports that this
// member was removed from the cluster (etcdserver/server.go, run loop);
// the only errors sent there are "member removed" ones. TestRemovedMember
// pins the text against the real server.
const removedMessage = "data-dir used by this member must be removed"

const redacted = "[redacted]"

// instrument returns lg with secrets redacted from every entry, a hook
// that records the removal message, and, once orderly is set (a stop that
// was asked for), the noise of that stop demoted to debug (quietCore).
func instrument(lg *zap.Logger, secrets []string, removed, orderly *atomic.Bool) *zap.Logger {
	opts := []zap.Option{zap.Hooks(func(e zapcore.Entry) error {
		if e.Message == removedMessage {
			removed.Store(true)
		}
		return nil
	})}
	if len(secrets) > 0 {
		opts = append(opts, zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return &redactCore{Core: c, secrets: secrets}
		}))
	}
	opts = append(opts, zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return &quietCore{Core: c, orderly: orderly}
	}))
	return lg.WithOptions(opts...)
}

// quietCore logs at debug level what etcd reports at warn or error level
// while it stops because it was asked to: its listeners closing under the
// servers that accept on them ("setting up serving from embedded etcd
// failed ... use of closed network connection", "http: Server closed"),
// its streams to peers ending, and a leadership transfer with nobody
// healthy to take over. Only those lines, only during an orderly stop: a
// real failure, or the same line at any other time, keeps its level.
type quietCore struct {
	zapcore.Core
	orderly *atomic.Bool
}

func (c *quietCore) With(fields []zapcore.Field) zapcore.Core {
	return &quietCore{Core: c.Core.With(fields), orderly: c.orderly}
}

func (c *quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *quietCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if e.Level >= zapcore.WarnLevel && c.orderly != nil && c.orderly.Load() {
		if lvl, ok := stopNoise(e.Message, errorText(fields)+" "+fieldText(fields, "reason")); ok {
			e.Level = lvl
		}
	}
	// etcd's storage version monitor runs as soon as the cluster version
	// is decided, which on a new cluster can come before the backend has
	// recorded a term: it logs an error and succeeds on its next round
	// (4 s later). Transient, so a warning; were it to last, it would
	// repeat.
	if e.Level == zapcore.ErrorLevel && e.Message == "failed to update storage version" &&
		strings.Contains(errorText(fields), "missing term information") {
		e.Level = zapcore.WarnLevel
	}
	// A health check whose client gave up (a prober's timeout, during a
	// start that takes a while) is the client's end, not the member's
	// failure: a warning. A check that fails for a reason of its own
	// (a read timing out, an alarm) stays an error.
	if e.Level == zapcore.ErrorLevel && e.Message == "Health check error" && strings.Contains(fieldText(fields, "reason"), "context canceled") {
		e.Level = zapcore.WarnLevel
	}
	if ce := c.Core.Check(e, nil); ce != nil {
		ce.Write(fields...)
	}
	return nil
}

// stopNoise says at which level a line of an orderly stop belongs.
func stopNoise(msg, err string) (zapcore.Level, bool) {
	closed := strings.Contains(err, "use of closed network connection") || strings.Contains(err, "server closed") ||
		strings.Contains(err, "Server closed") || strings.Contains(err, "the server has been stopped")
	switch {
	case msg == "setting up serving from embedded etcd failed." && closed,
		strings.HasSuffix(msg, "grpc server due to error") && closed,
		msg == "closed TCP streaming connection with remote peer",
		msg == "lost TCP streaming connection with remote peer",
		msg == "peer became inactive (message send to peer failed)",
		msg == "failed to find remote peer in cluster",
		// A readiness probe whose read the stop cancelled.
		msg == "Health check error" && strings.Contains(err, "context canceled"):
		return zapcore.DebugLevel, true
	case msg == "leadership transfer failed" && strings.Contains(err, "unhealthy cluster"):
		// Its peers are gone: nobody can take over, which is not a fault
		// of this stop. Still worth a line.
		return zapcore.InfoLevel, true
	}
	return 0, false
}

// errorText is the text of the "error" field, if any.
func errorText(fields []zapcore.Field) string { return fieldText(fields, "error") }

// fieldText is the text of the field named key, if any.
func fieldText(fields []zapcore.Field, key string) string {
	for _, f := range fields {
		if f.Key != key {
			continue
		}
		if err, ok := f.Interface.(error); ok && err != nil {
			return err.Error()
		}
		return f.String
	}
	return ""
}

// redactCore replaces secret values in messages and fields. etcd itself
// logs discovery-token and discovery-user (which may carry a password) at
// start-up, so filtering our own lines is not enough.
type redactCore struct {
	zapcore.Core
	secrets []string
}

func (c *redactCore) With(fields []zapcore.Field) zapcore.Core {
	return &redactCore{Core: c.Core.With(c.fields(fields)), secrets: c.secrets}
}

func (c *redactCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Write goes through the inner core's Check rather than its Write: cores
// such as zap's hook core only write through what their Check registered.
func (c *redactCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	e.Message = c.scrub(e.Message)
	if ce := c.Core.Check(e, nil); ce != nil {
		ce.Write(c.fields(fields)...)
	}
	return nil
}

func (c *redactCore) scrub(s string) string {
	for _, secret := range c.secrets {
		s = strings.ReplaceAll(s, secret, redacted)
	}
	return s
}

func (c *redactCore) contains(s string) bool {
	for _, secret := range c.secrets {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

func (c *redactCore) fields(fields []zapcore.Field) []zapcore.Field {
	out := fields
	copied := false
	for i, f := range fields {
		var text string
		switch f.Type {
		case zapcore.StringType:
			text = f.String
		case zapcore.BoolType, zapcore.DurationType, zapcore.Int64Type, zapcore.Int32Type,
			zapcore.Uint64Type, zapcore.Uint32Type, zapcore.Float64Type, zapcore.TimeType, zapcore.SkipType:
			continue
		default:
			// Errors, stringers, arrays and objects: render them as the
			// encoder would and look inside.
			enc := zapcore.NewMapObjectEncoder()
			f.AddTo(enc)
			text = fmt.Sprint(enc.Fields)
		}
		if !c.contains(text) {
			continue
		}
		if !copied {
			out = append([]zapcore.Field(nil), fields...)
			copied = true
		}
		out[i] = zap.String(f.Key, c.scrub(text))
	}
	return out
}
