package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
)

// ErrNotReady means a unit did not become ready in time, or failed.
var ErrNotReady = errors.New("service not ready")

// WaitReady polls the unit until it is active (READY=1 for etcd), failed,
// or the timeout passes, logging its STATUS as it changes.
func WaitReady(ctx context.Context, t Target, timeout time.Duration, log logrus.FieldLogger) (time.Duration, error) {
	unit := t.Unit()
	log = log.WithFields(logrus.Fields{"host": t.Host.Name, "unit": unit})
	start := time.Now()
	deadline := start.Add(timeout)
	last, lastLog := "", time.Time{}
	for {
		st, err := t.Services.State(ctx, unit)
		if err != nil {
			return time.Since(start), err
		}
		switch st.Active {
		case "active":
			msg := "ready"
			if st.Status != "" {
				msg += ": " + st.Status
			}
			log.WithField("took", time.Since(start).Round(10*time.Millisecond)).Info(msg)
			return time.Since(start), nil
		case "failed":
			return time.Since(start), fmt.Errorf("%w: %s on %s failed (%s, exit status %d): %s\n%s",
				ErrNotReady, unit, t.Host.Name, st.Result, st.ExitStatus, st.Status, t.Services.Logs(ctx, unit, 20))
		}
		if st.Status != last || time.Since(lastLog) > 10*time.Second {
			msg := st.Status
			if msg == "" {
				msg = st.Active
			}
			log.WithField("waited", time.Since(start).Round(time.Second)).Info(msg)
			last, lastLog = st.Status, time.Now()
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("%w: %s on %s not ready after %s: %s", ErrNotReady, unit, t.Host.Name, timeout, st.Status)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
