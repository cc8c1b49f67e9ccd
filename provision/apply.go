package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/units"
)

// ErrUnsafeRestart means restarting a member could lose quorum.
var ErrUnsafeRestart = errors.New("restart would risk quorum")

// ErrNotReady means a unit did not become ready in time, or failed.
var ErrNotReady = errors.New("service not ready")

// Target is one inventory host and the interfaces that reach it.
type Target struct {
	Host     installer.Host
	FS       FS
	Services Services
	// Runner runs commands on the host (restore, doctor); nil for hosts
	// only ever applied.
	Runner Runner
	// Etcdutl is the etcdutl command on the host; "" means "etcdutl".
	Etcdutl string
	// NoChown skips giving restored data to the etcd user (local test
	// clusters run as whoever started them).
	NoChown bool
}

// Unit is the unit the host runs.
func (t Target) Unit() string {
	if t.Host.Member != nil {
		return units.Etcd
	}
	return units.GRPCProxy
}

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// DryRun computes and reports the plan but changes nothing.
	DryRun bool
	// NoStart writes files and enables the unit but does not start it.
	NoStart bool
	// ForceRestart restarts a changed member even when the rest of the
	// cluster looks unable to keep quorum.
	ForceRestart bool
	// Member adjusts the member's rendering (member add).
	Member installer.MemberOptions
	// Dial connects to the cluster for the restart quorum check.
	Dial func(endpoints []string) (Membership, error)
	// Extra files to write with the rendered ones: the host's certificates.
	Extra []installer.File
}

// FileChange is a file Apply wrote, or would write in a dry run.
type FileChange struct {
	Path string
	New  bool // did not exist
	Meta bool // only mode or owner differ
}

// ApplyResult says what Apply did to one host.
type ApplyResult struct {
	Host      string
	Files     []FileChange
	Reloaded  bool
	Enabled   bool
	Started   bool
	Restarted bool
}

// Changed reports whether anything was (or would be) done.
func (r ApplyResult) Changed() bool {
	return len(r.Files) > 0 || r.Reloaded || r.Enabled || r.Started || r.Restarted
}

// Summary is one line describing the result.
func (r ApplyResult) Summary() string {
	if !r.Changed() {
		return "no changes"
	}
	var parts []string
	if len(r.Files) > 0 {
		var names []string
		for _, f := range r.Files {
			names = append(names, f.Path)
		}
		parts = append(parts, "wrote "+strings.Join(names, ", "))
	}
	for _, p := range []struct {
		ok   bool
		what string
	}{{r.Reloaded, "reloaded systemd"}, {r.Enabled, "enabled the unit"}, {r.Started, "started the unit"}, {r.Restarted, "restarted the unit (configuration changed)"}} {
		if p.ok {
			parts = append(parts, p.what)
		}
	}
	return strings.Join(parts, "; ")
}

// Apply makes one host match the inventory, in named phases: render,
// preflight, plan, files, units, start. Everything that can refuse
// (preflight, the quorum guard) runs before anything is written, so a
// refused apply leaves the host as it was. It is idempotent: a second run
// changes nothing and restarts nothing. It does not wait for the unit to
// become ready; call WaitReady for that (so several hosts start together).
func Apply(ctx context.Context, inv *installer.Inventory, t Target, o ApplyOptions, log logrus.FieldLogger) (ApplyResult, error) {
	res := ApplyResult{Host: t.Host.Name}
	log = log.WithField("host", t.Host.Name)
	unit := t.Unit()

	// render
	files, err := installer.RenderHost(inv, t.Host.Name, o.Member)
	if err != nil {
		return res, fmt.Errorf("render: %w", err)
	}
	files = append(files, o.Extra...)
	// preflight
	if err := preflight(inv, t, o); err != nil {
		return res, fmt.Errorf("preflight: %w", err)
	}
	// plan
	initialized := false
	if m := t.Host.Member; m != nil {
		if info, err := InspectDataDir(t.FS, inv.DataDir(m)); err == nil {
			initialized = info.Initialized
		}
	}
	unitFiles, config := false, false
	var newest time.Time
	for _, f := range files {
		old, _ := t.FS.ReadFile(f.Path)
		ch, changed, err := writeFile(t.FS, f, true)
		if err != nil {
			return res, fmt.Errorf("plan: %w", err)
		}
		if fi, err := t.FS.Stat(f.Path); err == nil && f.Unit != "" && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		if !changed {
			continue
		}
		res.Files = append(res.Files, ch)
		if ch.Meta {
			continue
		}
		unitFiles = unitFiles || f.UnitFile
		// etcd reads bootstrap settings only when its data dir is empty:
		// once initialized, a change to them (after member add, say) needs
		// no restart.
		if f.Unit != "" && !(initialized && f.Path == installer.EtcdConfPath && onlyBootstrapChanged(old, f.Data)) {
			config = true
		}
	}
	st, err := t.Services.State(ctx, unit)
	if err != nil {
		return res, fmt.Errorf("plan: %w", err)
	}
	// A unit that started before its configuration last changed (a crash
	// between writing and restarting, or an edit) still needs a restart;
	// not so when every change since was ignorable.
	pending := st.Running() && !st.Since.IsZero() && newest.After(st.Since) && (len(res.Files) == 0 || config)
	restart := st.Running() && (config || pending) && !o.NoStart
	if restart && t.Host.Member != nil && !o.ForceRestart && !o.DryRun {
		if err := restartSafe(ctx, inv, t.Host.Member, o.Dial); err != nil {
			return res, fmt.Errorf("plan: not restarting %s, nothing written: %w", unit, err)
		}
	}
	res.Reloaded = unitFiles
	res.Enabled = st.Enabled != "enabled"
	res.Started = !st.Running() && !o.NoStart
	res.Restarted = restart
	if o.DryRun {
		for _, f := range res.Files {
			log.WithField("file", f.Path).Info("dry run: would write")
		}
		if res.Changed() {
			log.Info("dry run: would " + strings.TrimPrefix(res.Summary(), "wrote "))
		}
		return res, nil
	}

	// files
	for _, f := range files {
		ch, changed, err := writeFile(t.FS, f, false)
		if err != nil {
			return res, fmt.Errorf("files: %w", err)
		}
		if changed {
			log.WithFields(logrus.Fields{"file": ch.Path, "mode": fmt.Sprintf("%04o", f.Mode), "owner": f.Owner + ":" + f.Group}).Info("wrote")
		}
	}
	if m := t.Host.Member; m != nil {
		// Data dirs outside /var/lib/etcd are not created by the unit's
		// StateDirectory=.
		if d := inv.Cluster.DataDir; d != installer.DefaultDataDir {
			if _, err := t.FS.Stat(d); errors.Is(err, fs.ErrNotExist) {
				if err := t.FS.MkdirAll(d, 0o700, "etcd", "etcd"); err != nil {
					return res, fmt.Errorf("files: creating %s: %w", d, err)
				}
			}
		}
	}
	// units
	if res.Reloaded {
		if err := t.Services.DaemonReload(ctx); err != nil {
			return res, fmt.Errorf("units: %w", err)
		}
		log.Info("reloaded systemd")
	}
	if res.Enabled {
		if err := t.Services.Enable(ctx, unit); err != nil {
			return res, fmt.Errorf("units: %w", err)
		}
		log.WithField("unit", unit).Info("enabled")
	}
	// start
	switch {
	case res.Started:
		log.WithField("unit", unit).Info("starting")
		if err := t.Services.Start(ctx, unit); err != nil {
			return res, fmt.Errorf("start: %w", err)
		}
	case res.Restarted:
		why := "configuration changed"
		if !config {
			why = "running with a configuration older than its files"
		}
		log.WithField("unit", unit).Info("restarting: " + why)
		if err := t.Services.Restart(ctx, unit); err != nil {
			return res, fmt.Errorf("start: %w", err)
		}
	}
	return res, nil
}

func preflight(inv *installer.Inventory, t Target, o ApplyOptions) error {
	m := t.Host.Member
	if m == nil {
		return nil
	}
	dir := inv.DataDir(m)
	info, err := InspectDataDir(t.FS, dir)
	if err != nil {
		return err
	}
	if o.Member.State == "existing" && info.Initialized {
		return fmt.Errorf("%w: %s already holds data, but %s joins the cluster as a new member; fix: move it aside "+
			"(mv %s %s.old-%s), it is kept", ErrForeignDataDir, dir, m.Name, dir, dir, time.Now().Format("20060102"))
	}
	if err := CheckDataDir(info, m.Name, inv.PeerURL(m)); err != nil {
		return err
	}
	if inv.TLSEnabled() {
		coming := map[string]bool{}
		for _, f := range o.Extra {
			coming[f.Path] = true
		}
		for _, p := range []string{inv.TLS.CAFile, inv.TLS.CertFile, inv.TLS.KeyFile, inv.TLS.PeerCertFile, inv.TLS.PeerKeyFile} {
			if coming[p] {
				continue
			}
			if _, err := t.FS.Stat(p); err != nil {
				return fmt.Errorf("TLS file %s: %w; fix: run `etcd-installer certs %s` and apply again, or copy the host's certificates there",
					p, err, inv.Source)
			}
		}
	}
	return nil
}

// writeFile writes f unless it is already there with the same content,
// mode and owner; in a dry run it only compares.
func writeFile(f FS, file installer.File, dryRun bool) (FileChange, bool, error) {
	ch := FileChange{Path: file.Path}
	old, err := f.ReadFile(file.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		ch.New = true
	case err != nil:
		return ch, false, err
	}
	if dryRun {
		if ch.New || !bytes.Equal(old, file.Data) {
			return ch, true, nil
		}
		if fi, err := f.Stat(file.Path); err == nil && fi.Mode().Perm() != file.Mode.Perm() {
			ch.Meta = true
			return ch, true, nil
		}
		return ch, false, nil
	}
	r, err := f.WriteFile(file.Path, file.Data, file.Mode, file.Owner, file.Group)
	if err != nil {
		return ch, false, err
	}
	ch.Meta = !r.Changed && r.MetaChanged
	return ch, r.Changed || r.MetaChanged, nil
}

// restartSafe checks that the other voting members keep quorum while m
// restarts.
func restartSafe(ctx context.Context, inv *installer.Inventory, m *installer.Member, dial func([]string) (Membership, error)) error {
	if len(inv.Members) == 1 {
		return nil
	}
	if dial == nil {
		return fmt.Errorf("%w: no way to ask the cluster (pass --force-restart to restart anyway)", ErrUnsafeRestart)
	}
	var others []string
	for i := range inv.Members {
		if inv.Members[i].Name != m.Name {
			others = append(others, inv.ClientURL(&inv.Members[i]))
		}
	}
	c, err := dial(others)
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
	voting, healthy, down := healthyVoting(ctx, c, members, m.Name)
	quorum := voting/2 + 1
	if healthy < quorum {
		return fmt.Errorf("%w: with %s restarting, %d of %d voting members would be healthy, and quorum is %d (unhealthy: %s); "+
			"fix the other members first, or pass --force-restart", ErrUnsafeRestart, m.Name, healthy, voting, quorum, strings.Join(down, ", "))
	}
	return nil
}

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
			if strings.HasPrefix(st.Status, "waiting for quorum") {
				msg += " (a member of a new cluster waits for its peers: apply the other hosts)"
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

// bootstrapVars are read by etcd only to create a new data dir.
var bootstrapVars = map[string]bool{
	"ETCD_INITIAL_CLUSTER": true, "ETCD_INITIAL_CLUSTER_STATE": true, "ETCD_INITIAL_CLUSTER_TOKEN": true,
	"ETCD_DISCOVERY_SRV": true, "ETCD_DISCOVERY_SRV_NAME": true, "ETCD_DISCOVERY_ENDPOINTS": true, "ETCD_DISCOVERY_TOKEN": true,
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
