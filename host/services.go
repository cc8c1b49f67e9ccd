package host

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// UnitState is what the service manager says about a unit.
type UnitState struct {
	Active  string // active, activating, deactivating, inactive, failed
	Sub     string
	Status  string // the unit's STATUS= text
	Enabled string // enabled, disabled, ...
	MainPID int
	Result  string // success, exit-code, signal, timeout, watchdog, ...
	// ExitStatus is the main process's last exit status.
	ExitStatus int
	// Since is when the main process started; zero when unknown.
	Since time.Time
}

// Running reports whether the unit's process is up (started or starting).
func (s UnitState) Running() bool {
	return s.Active == "active" || s.Active == "activating" || s.Active == "reloading"
}

// Services manages units on a host.
type Services interface {
	DaemonReload(ctx context.Context) error
	Enable(ctx context.Context, unit string) error
	Disable(ctx context.Context, unit string) error
	// Start and Restart return without waiting for READY; poll State.
	Start(ctx context.Context, unit string) error
	Restart(ctx context.Context, unit string) error
	// Stop waits until the unit stopped.
	Stop(ctx context.Context, unit string) error
	State(ctx context.Context, unit string) (UnitState, error)
	// Logs returns the unit's last lines of log, for error reports.
	Logs(ctx context.Context, unit string, lines int) string
}

// Systemd drives systemd through systemctl on a Runner.
type Systemd struct {
	R Runner
}

func (s Systemd) ctl(ctx context.Context, args ...string) error {
	_, err := s.R.Run(ctx, nil, append([]string{"systemctl"}, args...)...)
	return err
}

// DaemonReload implements Services.
func (s Systemd) DaemonReload(ctx context.Context) error { return s.ctl(ctx, "daemon-reload") }

// Enable implements Services.
func (s Systemd) Enable(ctx context.Context, unit string) error {
	return s.ctl(ctx, "enable", "--quiet", unit)
}

// Disable implements Services.
func (s Systemd) Disable(ctx context.Context, unit string) error {
	return s.ctl(ctx, "disable", "--quiet", unit)
}

// Start implements Services: with Type=notify, a blocking start of the
// first member of a new cluster would wait for its peers, so never block.
func (s Systemd) Start(ctx context.Context, unit string) error {
	return s.ctl(ctx, "start", "--no-block", unit)
}

// Restart implements Services.
func (s Systemd) Restart(ctx context.Context, unit string) error {
	return s.ctl(ctx, "restart", "--no-block", unit)
}

// Stop implements Services.
func (s Systemd) Stop(ctx context.Context, unit string) error { return s.ctl(ctx, "stop", unit) }

// State implements Services.
func (s Systemd) State(ctx context.Context, unit string) (UnitState, error) {
	out, err := s.R.Run(ctx, nil, "systemctl", "show", unit,
		"--timestamp=unix", "--property=ActiveState,SubState,StatusText,UnitFileState,MainPID,Result,ExecMainStatus,ExecMainStartTimestamp")
	if err != nil {
		return UnitState{}, err
	}
	var st UnitState
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "ActiveState":
			st.Active = v
		case "SubState":
			st.Sub = v
		case "StatusText":
			st.Status = v
		case "UnitFileState":
			st.Enabled = v
		case "MainPID":
			st.MainPID, _ = strconv.Atoi(v)
		case "Result":
			st.Result = v
		case "ExecMainStatus":
			st.ExitStatus, _ = strconv.Atoi(v)
		case "ExecMainStartTimestamp":
			if sec, err := strconv.ParseInt(strings.TrimPrefix(v, "@"), 10, 64); err == nil && sec > 0 {
				st.Since = time.Unix(sec, 0)
			}
		}
	}
	return st, nil
}

// Logs implements Services.
func (s Systemd) Logs(ctx context.Context, unit string, lines int) string {
	out, err := s.R.Run(ctx, nil, "journalctl", "--unit", unit, "--lines", strconv.Itoa(lines), "--no-pager", "--output", "cat")
	if err != nil {
		return fmt.Sprintf("(journal unavailable: %v)", err)
	}
	return string(out)
}
