package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/units"
	"github.com/etcd-appliance/appliance/workflow"
)

// ErrUnsafeRestart means restarting a member could lose quorum.
var ErrUnsafeRestart = errors.New("restart would risk quorum")

// Options tune Host.
type Options struct {
	// NoStart writes files and enables the unit but does not start it.
	NoStart bool
	// ForceRestart restarts a changed member even when the rest of the
	// cluster looks unable to keep quorum.
	ForceRestart bool
	// Member adjusts the member's rendering (member add).
	Member render.MemberOptions
	// LockWait bounds a rolling restart's wait for the cluster's
	// maintenance lock (0: 20 minutes).
	LockWait time.Duration
	// Dial connects to the cluster for the restart quorum check.
	Dial cluster.Dialer
	// Extra files to write with the rendered ones: the host's certificates.
	Extra []render.File
	// Plan records every change and is the dry-run guard; nil changes
	// without recording.
	Plan *workflow.Plan
	// BackupKnownHosts is the [backup] copy_to host's known_hosts (from
	// the operator's, host.KnownHostsFor), written on members.
	BackupKnownHosts []byte
	// CertsOnly writes the Extra files (certificates) and nothing else:
	// no rendered file, no unit change, no restart.
	CertsOnly bool
}

// FileChange is a file Host wrote, or would write in a dry run.
type FileChange struct {
	Path string
	New  bool // did not exist
	Meta bool // only mode or owner differ
	// Diff shows the change ("" for secrets and mode-only changes).
	Diff string
}

// Result says what Host did to one host.
type Result struct {
	Host      string
	Files     []FileChange
	Reloaded  bool
	Enabled   bool
	Started   bool
	Restarted bool
}

// Changed reports whether anything was (or would be) done.
func (r Result) Changed() bool {
	return len(r.Files) > 0 || r.Reloaded || r.Enabled || r.Started || r.Restarted
}

// Summary is one line describing the result.
func (r Result) Summary() string { return r.summary(false) }

// Plans is the summary of a dry run: what apply would do.
func (r Result) Plans() string { return r.summary(true) }

func (r Result) summary(dry bool) string {
	if !r.Changed() {
		return "no changes"
	}
	var parts []string
	say := func(did, would string) {
		if dry {
			parts = append(parts, "would "+would)
		} else {
			parts = append(parts, did)
		}
	}
	if len(r.Files) > 0 {
		var names []string
		for _, f := range r.Files {
			names = append(names, f.Path)
		}
		say("wrote "+strings.Join(names, ", "), "write "+strings.Join(names, ", "))
	}
	for _, p := range []struct {
		ok         bool
		did, would string
	}{
		{r.Reloaded, "reloaded systemd", "reload systemd"},
		{r.Enabled, "enabled the unit", "enable the unit"},
		{r.Started, "started the unit", "start the unit"},
		{r.Restarted, "restarted the unit (configuration changed)", "restart the unit (configuration changed)"},
	} {
		if p.ok {
			say(p.did, p.would)
		}
	}
	return strings.Join(parts, "; ")
}

// hostRun is one Host call: what the steps found and decided.
type hostRun struct {
	inv  *inventory.Inventory
	t    workflow.Target
	o    Options
	log  logrus.FieldLogger
	unit string

	files []render.File
	// changed are the files to write, by index into files.
	changed []int
	// config: a change the unit must restart for; else only bootstrap
	// settings or mode and owner changed.
	config bool
	// newest is the latest change to a file of the unit on the host.
	newest time.Time
	state  host.UnitState
	res    Result
}

// Host makes one host match the inventory, in named steps: render,
// preflight, compare, plan, files, units, start. Everything that can
// refuse (preflight, the quorum guard in plan) runs before anything is written,
// so a refused apply leaves the host as it was. Every change goes through
// o.Plan, so a dry run goes through the same steps and changes nothing.
// It is idempotent: a second run changes nothing and restarts nothing. It
// does not wait for the unit to become ready; workflow.WaitReady does (so
// several hosts start together).
func Host(ctx context.Context, inv *inventory.Inventory, t workflow.Target, o Options, log logrus.FieldLogger) (Result, error) {
	r := &hostRun{inv: inv, t: t, o: o, log: log.WithField("host", t.Host.Name), unit: t.Unit(), res: Result{Host: t.Host.Name}}
	if o.CertsOnly {
		r.files = o.Extra
		err := workflow.Run(ctx,
			workflow.Step{Name: "compare", Run: r.compare},
			workflow.Step{Name: "files", Run: r.writeFiles},
		)
		return r.res, err
	}
	err := workflow.Run(ctx,
		workflow.Step{Name: "render", Run: r.render},
		workflow.Step{Name: "preflight", Run: r.preflight},
		workflow.Step{Name: "compare", Run: r.compare},
		workflow.Step{Name: "plan", Run: r.plan},
		workflow.Step{Name: "files", Run: r.writeFiles},
		workflow.Step{Name: "units", Run: r.units},
		workflow.Step{Name: "start", Run: r.start},
	)
	return r.res, err
}

// Diff runs the render and compare steps of Host, which change nothing
// and ask nothing of systemd or the cluster: the files apply would write,
// each with its diff. It is what `etcd-installer plan` prints.
func Diff(ctx context.Context, inv *inventory.Inventory, t workflow.Target, o Options) (Result, error) {
	r := &hostRun{inv: inv, t: t, o: o, unit: t.Unit(), res: Result{Host: t.Host.Name}}
	err := workflow.Run(ctx,
		workflow.Step{Name: "render", Run: r.render},
		workflow.Step{Name: "compare", Run: r.compare},
	)
	return r.res, err
}

func (r *hostRun) render(context.Context) error {
	files, err := render.RenderHost(r.inv, r.t.Host.Name, r.o.Member)
	if err != nil {
		return err
	}
	r.files = append(files, r.o.Extra...)
	if r.t.Host.Member != nil && r.inv.Backup.Scheduled() && r.inv.Backup.CopyTo != "" {
		if len(r.o.BackupKnownHosts) == 0 {
			return fmt.Errorf("backup.copy_to in %s: apply needs %s's host key from your known_hosts to give the members (it writes %s): add it after checking its fingerprint (ssh-keyscan HOST >> ~/.ssh/known_hosts)",
				r.inv.Source, r.inv.Backup.CopyTo, layout.BackupKnownHosts)
		}
		r.files = append(r.files, render.File{Path: layout.BackupKnownHosts, Mode: 0o644, Owner: "root", Group: "root", Data: r.o.BackupKnownHosts})
	}
	return render.CheckPaths(r.files)
}

// preflight refuses a data dir that belongs to another cluster or member,
// and TLS files that are neither on the host nor coming with this apply.
func (r *hostRun) preflight(context.Context) error {
	m := r.t.Host.Member
	if m == nil {
		return nil
	}
	dir := r.inv.DataDir(m)
	info, err := host.InspectDataDir(r.t.FS, dir)
	if err != nil {
		return err
	}
	if r.o.Member.State == "existing" && info.Initialized {
		return fmt.Errorf("%w: %s already holds data, but %s joins the cluster as a new member; fix: move it aside "+
			"(mv %s %s.old-%s), it is kept", datadir.ErrForeign, dir, m.Name, dir, dir, time.Now().Format("20060102"))
	}
	if err := datadir.Check(info, m.Name, r.inv.PeerURL(m)); err != nil {
		return err
	}
	if !r.inv.TLSEnabled() {
		return nil
	}
	coming := map[string]bool{}
	for _, f := range r.o.Extra {
		coming[f.Path] = true
	}
	t := r.inv.TLS
	for _, p := range []string{t.CAFile, t.CertFile, t.KeyFile, t.PeerCertFile, t.PeerKeyFile} {
		if coming[p] {
			continue
		}
		if _, err := r.t.FS.Stat(p); err != nil {
			return fmt.Errorf("TLS file %s: %w; fix: run `etcd-installer certs %s` and apply again, or copy the host's certificates there",
				p, err, r.inv.Source)
		}
	}
	return nil
}

// compare compares every file with the host's.
func (r *hostRun) compare(context.Context) error {
	initialized := false
	if m := r.t.Host.Member; m != nil {
		if info, err := host.InspectDataDir(r.t.FS, r.inv.DataDir(m)); err == nil {
			initialized = info.Initialized
		}
	}
	unitFiles := false
	var newest time.Time
	for i, f := range r.files {
		ch, old, changed, err := compare(r.t.FS, f)
		if err != nil {
			return err
		}
		if fi, err := r.t.FS.Stat(f.Path); err == nil && f.Unit != "" && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		if !changed {
			continue
		}
		r.changed = append(r.changed, i)
		r.res.Files = append(r.res.Files, ch)
		if ch.Meta {
			continue
		}
		unitFiles = unitFiles || f.UnitFile
		// etcd reads bootstrap settings only when its data dir is empty:
		// once initialized, a change to them (after member add, say) needs
		// no restart.
		// A change in comments alone (the header of an older release)
		// changes nothing the unit reads.
		if f.Unit != "" && !onlyCommentsChanged(old, f.Data) && !(initialized && f.Path == layout.EtcdConf && onlyBootstrapChanged(old, f.Data)) {
			r.config = true
		}
	}
	r.res.Reloaded = unitFiles
	r.newest = newest
	return nil
}

// plan decides what the unit needs; a restart of a member is checked
// against quorum here, before anything is written.
func (r *hostRun) plan(ctx context.Context) error {
	st, err := r.t.Services.State(ctx, r.unit)
	if err != nil {
		return err
	}
	r.state = st
	// A unit that started before its configuration last changed (a crash
	// between writing and restarting, or an edit) still needs a restart;
	// not so when every change since was ignorable.
	// Files written with changes etcd ignores get the unit's start time
	// (ignorable below), so a file newer than the unit is a real change.
	// systemd gives the start in whole seconds: a file written in the
	// second the unit started is not newer than it.
	pending := st.Running() && !st.Since.IsZero() && r.newest.Truncate(time.Second).After(st.Since)
	restart := st.Running() && (r.config || pending) && !r.o.NoStart
	if restart && r.t.Host.Member != nil && !r.o.ForceRestart && !r.o.Plan.DryRun() {
		if err := restartSafe(ctx, r.inv, r.t.Host.Member, r.o.Dial); err != nil {
			return fmt.Errorf("not restarting %s, nothing written: %w", r.unit, err)
		}
	}
	r.res.Enabled = st.Enabled != "enabled"
	r.res.Started = !st.Running() && !r.o.NoStart
	r.res.Restarted = restart
	return nil
}

func (r *hostRun) writeFiles(context.Context) error {
	for k, i := range r.changed {
		f, ch := r.files[i], r.res.Files[k]
		what := "write " + f.Path
		switch {
		case ch.New:
			what += " (new)"
		case ch.Meta:
			what = fmt.Sprintf("set mode %04o and owner %s:%s of %s", f.Mode.Perm(), f.Owner, f.Group, f.Path)
		}
		err := r.o.Plan.DoDetail(r.t.Host.Name, what, ch.Diff, func() error {
			if _, err := r.t.FS.WriteFile(f.Path, f.Data, f.Mode, f.Owner, f.Group); err != nil {
				return err
			}
			if err := r.ignorable(f, ch); err != nil {
				return err
			}
			r.log.WithFields(logrus.Fields{"file": f.Path, "mode": fmt.Sprintf("%04o", f.Mode), "owner": f.Owner + ":" + f.Group}).Info("wrote")
			return nil
		})
		if err != nil {
			return err
		}
	}
	m := r.t.Host.Member
	// Data dirs outside /var/lib/etcd are not created by the unit's
	// StateDirectory=.
	if d := r.inv.Cluster.DataDir; m == nil || d == layout.DataDir {
		return nil
	}
	d := r.inv.Cluster.DataDir
	if _, err := r.t.FS.Stat(d); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return r.o.Plan.Do(r.t.Host.Name, "create "+d+" (0700 etcd:etcd)", func() error {
		if err := r.t.FS.MkdirAll(d, 0o700, "etcd", "etcd"); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
		return nil
	})
}

// ignorable dates a file of the running unit back to the unit's start
// when the unit keeps running with it (only settings etcd ignores once it
// has data changed): otherwise the next apply would take the newer file
// for a change the unit never picked up, and restart the member for it.
func (r *hostRun) ignorable(f render.File, ch FileChange) error {
	st := r.state
	// Only when nothing written needs the restart: a real change not
	// restarted now (--no-start) must stay newer than the unit.
	if f.Unit == "" || ch.Meta || r.config || !st.Running() || st.Since.IsZero() || r.res.Restarted {
		return nil
	}
	return r.t.FS.SetModTime(f.Path, st.Since)
}

func (r *hostRun) units(ctx context.Context) error {
	if r.res.Reloaded {
		if err := r.o.Plan.Do(r.t.Host.Name, "reload systemd (a unit file changed)", func() error {
			if err := r.t.Services.DaemonReload(ctx); err != nil {
				return err
			}
			r.log.Info("reloaded systemd")
			return nil
		}); err != nil {
			return err
		}
	}
	if r.res.Enabled {
		if err := r.o.Plan.Do(r.t.Host.Name, "enable "+r.unit, func() error {
			if err := r.t.Services.Enable(ctx, r.unit); err != nil {
				return err
			}
			r.log.WithField("unit", r.unit).Info("enabled")
			return nil
		}); err != nil {
			return err
		}
	}
	return r.timers(ctx)
}

// scheduledTimer is a timer apply enables on members when the inventory
// schedules it.
type scheduledTimer struct {
	unit, dropIn, section, schedule, what string
	// prepare runs before the timer starts (a dir its service needs).
	prepare func(ctx context.Context) error
}

// timers enables and starts the members' scheduled timers: the backup's
// and the maintenance's.
func (r *hostRun) timers(ctx context.Context) error {
	if r.t.Host.Member == nil {
		return nil
	}
	backup := scheduledTimer{unit: units.BackupTimer, dropIn: layout.BackupTimerDropIn, section: "backup",
		schedule: r.inv.Backup.Schedule, what: "backups", prepare: func(ctx context.Context) error {
			return errors.Join(r.backupDir(ctx), r.backupKey(ctx))
		}}
	maintenance := scheduledTimer{unit: units.MaintenanceTimer, dropIn: layout.MaintenanceTimerDropIn, section: "maintenance",
		schedule: r.inv.Maintenance.Schedule, what: "maintenance"}
	for _, tm := range []scheduledTimer{backup, maintenance} {
		if err := r.timer(ctx, tm); err != nil {
			return err
		}
	}
	return nil
}

// backupDir creates a backup dir other than the default: the package's
// tmpfiles.d creates only the default dir, and the unit's sandbox needs
// the dir it opens to exist.
func (r *hostRun) backupDir(ctx context.Context) error {
	d := r.inv.Backup.Dir
	if d == layout.BackupDir {
		return nil
	}
	if _, err := r.t.FS.Stat(d); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return r.o.Plan.Do(r.t.Host.Name, "create "+d+" (0700 etcd:etcd, for backups)", func() error {
		return r.t.FS.MkdirAll(d, 0o700, "etcd", "etcd")
	})
}

// backupKey makes the member's SSH key for the backup copies (once: it
// is the identity the copy host authorizes, so it is never replaced).
func (r *hostRun) backupKey(ctx context.Context) error {
	if r.inv.Backup.CopyTo == "" {
		return nil
	}
	if _, err := r.t.FS.Stat(layout.BackupSSHKey); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return r.o.Plan.Do(r.t.Host.Name, "make "+layout.BackupSSHKey+" (ed25519, 0600 root): the identity "+r.inv.Backup.CopyTo+" authorizes for the backup copies (etcd-installer backup keys lists them)", func() error {
		priv, pub, err := host.NewSSHKey("etcd-backup@" + r.t.Host.Name)
		if err != nil {
			return err
		}
		if _, err := r.t.FS.WriteFile(layout.BackupSSHKey+".pub", pub, 0o644, "root", "root"); err != nil {
			return err
		}
		_, err = r.t.FS.WriteFile(layout.BackupSSHKey, priv, 0o600, "root", "root")
		return err
	})
}

// timer enables and starts a scheduled timer on a member when the
// inventory schedules it (once: an active, enabled timer is left as it
// is; a new schedule takes effect with the daemon-reload above), and stops
// and disables it when the inventory no longer does.
func (r *hostRun) timer(ctx context.Context, tm scheduledTimer) error {
	st, err := r.t.Services.State(ctx, tm.unit)
	if tm.schedule == "" {
		// The schedule was removed from the inventory: the timer stops
		// (what it made stays where it is).
		if err != nil || (st.Enabled != "enabled" && st.Active != "active") {
			return nil
		}
		return r.o.Plan.Do(r.t.Host.Name, "stop and disable "+tm.unit+" (the inventory has no ["+tm.section+"] schedule)", func() error {
			if err := r.t.Services.Stop(ctx, tm.unit); err != nil {
				return err
			}
			if err := r.t.Services.Disable(ctx, tm.unit); err != nil {
				return err
			}
			r.log.WithField("unit", tm.unit).Info("stopped and disabled")
			return nil
		})
	}
	if tm.prepare != nil {
		if err := tm.prepare(ctx); err != nil {
			return err
		}
	}
	// A new schedule re-arms a running timer; systemd refuses one it
	// cannot read only when the timer starts, so the start is checked.
	changed := slices.ContainsFunc(r.res.Files, func(f FileChange) bool { return f.Path == tm.dropIn })
	if err == nil && st.Active == "active" && st.Enabled == "enabled" && !changed {
		return nil
	}
	return r.o.Plan.Do(r.t.Host.Name, "enable and (re)start "+tm.unit+" ("+tm.what+" on "+tm.schedule+")", func() error {
		if err := r.t.Services.Enable(ctx, tm.unit); err != nil {
			return err
		}
		if err := r.t.Services.Restart(ctx, tm.unit); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := r.t.Services.State(ctx, tm.unit)
			if err != nil {
				return err
			}
			if st.Active == "active" {
				break
			}
			if st.Active == "failed" || time.Now().After(deadline) {
				return fmt.Errorf("%s is %s: systemd did not take the schedule %q; fix: %s.schedule in %s (`systemd-analyze calendar %q` checks it)\n%s",
					tm.unit, st.Active, tm.schedule, tm.section, r.inv.Source, tm.schedule, r.t.Services.Logs(ctx, tm.unit, 5))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		r.log.WithField("unit", tm.unit).Info("enabled and started")
		return nil
	})
}

func (r *hostRun) start(ctx context.Context) error {
	switch {
	case r.res.Started:
		return r.o.Plan.Do(r.t.Host.Name, "start "+r.unit, func() error {
			r.log.WithField("unit", r.unit).Info("starting")
			return r.t.Services.Start(ctx, r.unit)
		})
	case r.res.Restarted:
		why := "configuration changed"
		if !r.config {
			why = "running with a configuration older than its files"
		}
		return r.o.Plan.Do(r.t.Host.Name, "restart "+r.unit+": "+why, func() error {
			r.log.WithField("unit", r.unit).Info("restarting: " + why)
			return r.t.Services.Restart(ctx, r.unit)
		})
	}
	return nil
}

// compare says how the host's copy of file differs from the rendered one,
// with the host's bytes: changed is false when content, mode and owner
// match. The diff of a secret is never shown.
func compare(f host.FS, file render.File) (ch FileChange, old []byte, changed bool, err error) {
	ch = FileChange{Path: file.Path}
	old, err = f.ReadFile(file.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ch.New = true
	case err != nil:
		return ch, nil, false, err
	}
	if ch.New {
		ch.Diff = diff(file, "", true)
		return ch, old, true, nil
	}
	fi, err := f.Stat(file.Path)
	if err != nil {
		return ch, old, false, err
	}
	if !bytes.Equal(old, file.Data) {
		ch.Diff = diff(file, string(old), false)
		if fi.Mode().Perm() != file.Mode.Perm() {
			ch.Diff += fmt.Sprintf("%s: mode %04o -> %04o\n", file.Path, fi.Mode().Perm(), file.Mode.Perm())
		}
		return ch, old, true, nil
	}
	owner, group, err := f.Owner(file.Path)
	if err != nil {
		return ch, old, false, err
	}
	if fi.Mode().Perm() != file.Mode.Perm() {
		ch.Meta = true
		ch.Diff = fmt.Sprintf("%s: mode %04o -> %04o\n", file.Path, fi.Mode().Perm(), file.Mode.Perm())
	}
	if owner != "" && (owner != file.Owner || group != file.Group) {
		ch.Meta = true
		ch.Diff += fmt.Sprintf("%s: owner %s:%s -> %s:%s\n", file.Path, owner, group, file.Owner, file.Group)
	}
	if ch.Meta {
		return ch, old, true, nil
	}
	return ch, old, false, nil
}

// diff is the unified diff from the host's file to the rendered one.
func diff(file render.File, old string, isNew bool) string {
	if file.Secret {
		return file.Path + ": content differs (a secret: not shown)\n"
	}
	if isNew {
		return udiff.Unified("/dev/null", file.Path+" (new)", "", string(file.Data))
	}
	return udiff.Unified(file.Path+" (on host)", file.Path+" (rendered)", old, string(file.Data))
}

// restartSafe checks that the other voting members keep quorum while m
// restarts.
func restartSafe(ctx context.Context, inv *inventory.Inventory, m *inventory.Member, dial cluster.Dialer) error {
	if len(inv.Members) == 1 {
		return nil
	}
	if dial == nil {
		return fmt.Errorf("%w: no way to ask the cluster (pass --force-restart to restart anyway)", ErrUnsafeRestart)
	}
	c, err := dial(cluster.OthersOf(inv, m.Name))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsafeRestart, err)
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	members, err := c.Members(cctx)
	if err != nil {
		return fmt.Errorf("%w: the cluster does not answer: %w (pass --force-restart to restart anyway)", ErrUnsafeRestart, err)
	}
	voting, healthy, down := cluster.HealthyVoting(ctx, c, members, m.Name)
	quorum := voting/2 + 1
	if healthy < quorum {
		return fmt.Errorf("%w: with %s restarting, %d of %d voting members would be healthy, and quorum is %d (unhealthy: %s); "+
			"fix the other members first, or pass --force-restart", ErrUnsafeRestart, m.Name, healthy, voting, quorum, strings.Join(down, ", "))
	}
	return nil
}

// bootstrapVars are read by etcd only to create a new data dir.
var bootstrapVars = map[string]bool{
	"ETCD_INITIAL_CLUSTER": true, "ETCD_INITIAL_CLUSTER_STATE": true, "ETCD_INITIAL_CLUSTER_TOKEN": true,
	"ETCD_DISCOVERY_SRV": true, "ETCD_DISCOVERY_SRV_NAME": true, "ETCD_DISCOVERY_ENDPOINTS": true, "ETCD_DISCOVERY_TOKEN": true,
}

// onlyCommentsChanged reports whether two env files or unit drop-ins
// differ only in comment lines (# or ;) and blank lines.
func onlyCommentsChanged(old, new []byte) bool {
	strip := func(b []byte) string {
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") {
				continue
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	return strip(old) == strip(new)
}

// onlyBootstrapChanged reports whether two env files differ only in
// bootstrap variables and comments.
func onlyBootstrapChanged(old, new []byte) bool {
	a, err1 := envfile.Parse("old", bytes.NewReader(old))
	b, err2 := envfile.Parse("new", bytes.NewReader(new))
	if err1 != nil || err2 != nil {
		return false
	}
	am, bm := envfile.Map(a), envfile.Map(b)
	for k, v := range am {
		if bm[k] != v && !bootstrapVars[k] {
			return false
		}
	}
	for k, v := range bm {
		if am[k] != v && !bootstrapVars[k] {
			return false
		}
	}
	return true
}
