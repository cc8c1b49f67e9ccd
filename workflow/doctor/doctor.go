// Package doctor finds and explains what keeps a host or its cluster from
// working: the env file, the unit and what it waits for, the data dir,
// certificates, ports, peers, clocks and disk latency, each finding with
// its fix. It changes nothing.
package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dustin/go-humanize"
	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/discovery"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/internal/parallel"
	"github.com/etcd-appliance/appliance/internal/shquote"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/node"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow"
)

// Severity of a doctor finding.
type Severity int

// Severities, in increasing order. Skip is a check that could not run
// here (it says why).
const (
	Skip Severity = iota
	OK
	Warn
	Fail
)

func (s Severity) String() string { return [...]string{"skip", "ok", "warn", "FAIL"}[s] }

// Finding is one doctor check's result.
type Finding struct {
	Host     string   `json:"host"`
	Check    string   `json:"check"`
	Severity Severity `json:"-"`
	Level    string   `json:"severity"`
	Message  string   `json:"message"`
	Fix      string   `json:"fix,omitempty"`
}

// Options tune Run.
type Options struct {
	TLS *tls.Config
	// FsyncThreshold: a p99 fdatasync latency above it is reported
	// (etcd's guidance is 10 ms).
	FsyncThreshold time.Duration
	// MaxClockSkew: larger differences to a member's clock are reported.
	MaxClockSkew time.Duration
	// Now is this host's clock; tests skew it.
	Now func() time.Time
	// Resolver answers the dns-srv check (nil: this host's resolver).
	Resolver *net.Resolver
}

func (o Options) withDefaults() Options {
	if o.FsyncThreshold == 0 {
		o.FsyncThreshold = 10 * time.Millisecond
	}
	if o.MaxClockSkew == 0 {
		// The HTTP Date header has one-second resolution: report at 2 s.
		o.MaxClockSkew = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	return o
}

// Run checks one host for the failures operators meet and explains
// each with its fix. It changes nothing.
func Run(ctx context.Context, inv *inventory.Inventory, t workflow.Target, o Options) []Finding {
	o = o.withDefaults()
	d := &doctor{inv: inv, t: t, o: o}
	d.check("env-file", d.envFile)
	if t.Host.Member != nil {
		d.check("initial-cluster", d.initialCluster)
	}
	st, stErr := t.Services.State(ctx, t.Unit())
	d.check("unit", func() string { return d.unit(ctx, st, stErr) })
	if m := t.Host.Member; m != nil {
		d.check("data-dir", func() string { return d.dataDir(m) })
		d.check("stray-dirs", d.strayDirs)
		d.check("kept-dirs", d.keptDirs)
		d.check("ports", func() string {
			if st.Running() {
				d.add(Skip, "ports", "", "%s runs: the ports are its own", t.Unit())
				return ""
			}
			return d.ports()
		})
		d.check("fsync", d.fsync)
	}
	if inv.Cluster.Bootstrap == inventory.BootstrapDNSSRV {
		d.check("dns-srv", func() string { return d.srvRecords(ctx) })
	}
	if m := t.Host.Member; m != nil && inv.Cluster.Bootstrap == inventory.BootstrapDiscovery {
		d.check("discovery", func() string { return d.discoveryService(ctx, m) })
	}
	d.check("certificates", d.certificates)
	if m := t.Host.Member; m != nil {
		if st.Active == "active" {
			d.check("space", func() string { return d.space(ctx, m) })
		} else {
			d.add(Skip, "space", "", "%s is not serving (%s): no alarms or backend to ask about", t.Unit(), st.Active)
		}
	}
	d.check("peers", func() string { return d.peers(ctx) })
	d.check("clock", func() string { return d.clocks(ctx) })
	sort.SliceStable(d.out, func(i, j int) bool { return d.out[i].Severity > d.out[j].Severity })
	return d.out
}

// found reports whether the check has a line already.
func (d *doctor) found(check string) bool {
	for _, f := range d.out {
		if f.Check == check {
			return true
		}
	}
	return false
}

// check runs one check: every check prints at least one line, so a check
// that found nothing wrong says what it found right (the message f
// returns).
func (d *doctor) check(name string, f func() string) {
	before := len(d.out)
	ok := f()
	for _, x := range d.out[before:] {
		if x.Check == name {
			return
		}
	}
	if ok == "" {
		ok = "nothing to check"
	}
	d.add(OK, name, "", "%s", ok)
}

type doctor struct {
	inv *inventory.Inventory
	t   workflow.Target
	o   Options
	out []Finding
	env map[string]string
}

func (d *doctor) add(sev Severity, check, fix, format string, args ...any) {
	d.out = append(d.out, Finding{Host: d.t.Host.Name, Check: check, Severity: sev, Level: sev.String(),
		Message: fmt.Sprintf(format, args...), Fix: fix})
}

// certificates checks the host's TLS files: present, from the cluster's
// CA, key matching, and not expiring within 30 days. Key bytes are
// compared, never shown.
func (d *doctor) certificates() string {
	if !d.inv.TLSEnabled() {
		d.add(Skip, "certificates", "", "TLS is off in %s", d.inv.Source)
		return ""
	}
	t := d.inv.TLS
	fix := "run `etcd-installer certs " + d.inv.Source + "` (or `certs renew`) on the operator's machine, then apply"
	caPEM, err := d.t.FS.ReadFile(t.CAFile)
	if err != nil {
		d.add(Fail, "certificates", fix, "CA certificate %s: %v", t.CAFile, err)
		return ""
	}
	ca, err := pki.ParseCert(caPEM)
	if err != nil {
		d.add(Fail, "certificates", fix, "CA certificate %s: %v", t.CAFile, err)
		return ""
	}
	pairs := [][2]string{{t.CertFile, t.KeyFile}, {t.ClientCertFile, t.ClientKeyFile}}
	if d.t.Host.Member != nil {
		pairs = append(pairs, [2]string{t.PeerCertFile, t.PeerKeyFile})
	}
	now := d.o.Now()
	soonest, problems := ca.NotAfter, 0
	if w := pki.Expiring("the cluster CA "+t.CAFile, ca, now); w != "" {
		d.add(Warn, "certificates", "issue a new CA (certs in an empty directory) and roll it out to every host before the old one expires", "%s", w)
		problems++
	}
	for _, p := range pairs {
		certPEM, err := d.t.FS.ReadFile(p[0])
		if err != nil {
			d.add(Fail, "certificates", fix, "%s: %v", p[0], err)
			problems++
			continue
		}
		cert, err := pki.ParseCert(certPEM)
		if err != nil {
			d.add(Fail, "certificates", fix, "%s: %v", p[0], err)
			problems++
			continue
		}
		if err := cert.CheckSignatureFrom(ca); err != nil {
			d.add(Fail, "certificates", fix, "%s is not signed by the CA in %s: peers and clients refuse it", p[0], t.CAFile)
			problems++
		}
		if keyPEM, err := d.t.FS.ReadFile(p[1]); err != nil {
			d.add(Fail, "certificates", fix, "%s: %v", p[1], err)
			problems++
		} else if !pki.SameKeyPair(certPEM, keyPEM) {
			d.add(Fail, "certificates", fix, "%s does not belong to %s", p[1], p[0])
			problems++
		}
		if w := pki.Expiring(p[0], cert, now); w != "" {
			sev := Warn
			if cert.NotAfter.Before(now) {
				sev = Fail
			}
			d.add(sev, "certificates", fix, "%s", w)
			problems++
		}
		if cert.NotAfter.Before(soonest) {
			soonest = cert.NotAfter
		}
	}
	if problems == 0 {
		d.add(OK, "certificates", "", "%d certificates from the cluster CA, valid until %s at least", len(pairs), soonest.Format("2006-01-02"))
	}
	return ""
}

func (d *doctor) envFile() string {
	p := layout.EtcdConf
	if d.t.Host.Member == nil {
		p = layout.ProxyConf
	}
	data, err := d.t.FS.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		d.add(Fail, "env-file", "run `etcd-installer apply "+d.inv.Source+"` on this host", "%s is missing: the host was never applied", p)
		return ""
	}
	if err != nil {
		d.add(Fail, "env-file", "", "%s: %v", p, err)
		return ""
	}
	entries, err := envfile.Parse(p, bytes.NewReader(data))
	if err != nil {
		d.add(Fail, "env-file", "fix the syntax, or re-run apply to rewrite the file", "%v", err)
		return ""
	}
	d.env = envfile.Map(entries)
	if d.t.Host.Member != nil {
		c, err := node.Parse(nil, envfile.Environ(entries))
		switch {
		case err != nil:
			d.add(Fail, "env-file", "remove or correct those variables (apply rewrites the file from the inventory)",
				"etcd will refuse %s: %s", p, strings.ReplaceAll(strings.TrimPrefix(err.Error(), node.ErrConfig.Error()+":\n"), "\n", "; "))
		case len(c.Warnings) > 0:
			d.add(Warn, "env-file", "use the current spellings", "%s uses options older etcd releases had: %s", p, strings.Join(c.Warnings, "; "))
		}
	}
	if files, err := render.RenderHost(d.inv, d.t.Host.Name, render.MemberOptions{}); err == nil {
		for _, f := range files {
			if f.Path == p && !bytes.Equal(f.Data, data) {
				d.add(Warn, "env-file", "`etcd-installer plan "+d.inv.Source+"` shows the difference; apply writes the inventory's version",
					"%s differs from what the inventory renders", p)
			}
		}
	}
	return p + " is what the inventory renders, and etcd accepts it"
}

func (d *doctor) initialCluster() string {
	name, adv, ic := d.env["ETCD_NAME"], d.env["ETCD_INITIAL_ADVERTISE_PEER_URLS"], d.env["ETCD_INITIAL_CLUSTER"]
	if ic == "" || name == "" {
		d.add(Skip, "initial-cluster", "", "no ETCD_NAME and ETCD_INITIAL_CLUSTER to compare (see env-file)")
		return ""
	}
	for _, part := range strings.Split(ic, ",") {
		n, u, _ := strings.Cut(part, "=")
		if n == name && (adv == "" || strings.Contains(adv, u)) {
			return "ETCD_INITIAL_CLUSTER lists " + name + "=" + u
		}
	}
	d.add(Fail, "initial-cluster", "list this member in ETCD_INITIAL_CLUSTER with its peer URL (apply renders it from the inventory)",
		"ETCD_INITIAL_CLUSTER does not list %s=%s: a new member refuses to start (\"couldn't find local name in the initial cluster\")", name, adv)
	return ""
}

// waitingRE finds whom a waiting member waits for, without the
// parenthesis after it that says what kind of start it is.
var waitingRE = regexp.MustCompile(`.*waiting for ([^()]+?)(?: \([^()]*\))?$`)

func (d *doctor) unit(ctx context.Context, st host.UnitState, err error) string {
	unit := d.t.Unit()
	switch {
	case err != nil:
		d.add(Warn, "unit", "", "cannot ask the service manager about %s: %v", unit, err)
	case st.Active == "failed" && st.ExitStatus == node.ExitRemoved:
		fix := "to bring it back: `etcd-installer member add " + d.inv.Source + " " + d.t.Host.Name + "`"
		if m := d.t.Host.Member; m != nil {
			dir := d.inv.DataDir(m)
			switch _, err := d.t.FS.Stat(dir); {
			case err == nil:
				fix = "move its old data dir aside (mv " + dir + " " + dir + ".removed-" + d.o.Now().Format("20060102") + "), then " + fix
			case errors.Is(err, fs.ErrNotExist):
				fix = "its old data dir is already moved aside (" + dir + ".removed-*); " + fix
			default:
				fix = "make sure its old data dir " + dir + " is moved aside (" + err.Error() + "), then " + fix
			}
		}
		d.add(Fail, "unit", fix, "%s exited %d: the cluster removed this member", unit, st.ExitStatus)
	case st.Active == "failed" && st.ExitStatus == node.ExitLostData:
		d.add(Fail, "unit", "replace the member: `etcd-installer member replace "+d.inv.Source+" "+d.t.Host.Name+"` (it moves the empty data dir aside, removes the member and adds it back as a learner that catches up)",
			"%s exited %d: the cluster has this member, but its data dir holds none of its data (a lost disk, or the dir deleted)", unit, st.ExitStatus)
	case st.Active == "failed":
		d.add(Fail, "unit", "the last lines of its log say why: journalctl -u "+unit,
			"%s failed (%s, exit status %d): %s", unit, st.Result, st.ExitStatus, st.Status)
	case st.Active == "activating" && strings.HasPrefix(st.Status, "waiting for quorum"):
		wait := ""
		if m := waitingRE.FindStringSubmatch(st.Status); m != nil {
			wait = m[1]
		}
		fix := "start etcd on the members it waits for"
		if wait != "" {
			fix = "start etcd on " + wait
		}
		d.add(Warn, "unit", fix+" (after a power cut of every member, starting them in any order is enough)",
			"%s waits for its peers: %s", unit, st.Status)
	case !st.Running():
		d.add(Warn, "unit", "systemctl start "+unit, "%s is %s", unit, st.Active)
	default:
		d.add(OK, "unit", "", "%s is %s: %s", unit, st.Active, st.Status)
	}
	return ""
}

func (d *doctor) dataDir(m *inventory.Member) string {
	dir := d.inv.DataDir(m)
	fi, err := d.t.FS.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		d.add(OK, "data-dir", "", "%s does not exist yet: etcd creates it on first start", dir)
		return ""
	}
	if err != nil {
		d.add(Fail, "data-dir", "", "%s: %v", dir, err)
		return ""
	}
	fix := fmt.Sprintf("chown -R etcd:etcd %s && chmod 700 %s", dir, dir)
	if fi.Mode().Perm() != 0o700 {
		d.add(Fail, "data-dir", fix, "%s has mode %04o: etcd wants 0700 (it refuses to use a data dir others can read)", dir, fi.Mode().Perm())
	}
	owner, _, oerr := d.t.FS.Owner(dir)
	if oerr == nil && owner != "" && owner != "etcd" {
		d.add(Fail, "data-dir", fix, "%s belongs to %s, not etcd: the service (User=etcd) cannot write it", dir, owner)
	}
	info, err := host.InspectDataDir(d.t.FS, dir)
	if err != nil {
		d.add(Warn, "data-dir", "", "cannot read %s: %v", dir, err)
		return ""
	}
	if err := datadir.Check(info, m.Name, d.inv.PeerURL(m)); err != nil {
		d.add(Fail, "data-dir", "", "%v", err)
	}
	perm := "mode 0700"
	if owner != "" {
		perm += ", owner " + owner
	}
	switch {
	case info.Locked:
		return fmt.Sprintf("%s: %s, in use by the running member", dir, perm)
	case info.Initialized:
		return fmt.Sprintf("%s: %s, member %s of this cluster", dir, perm, m.Name)
	}
	return fmt.Sprintf("%s: %s, empty (etcd fills it on first start)", dir, perm)
}

// keptSuffix matches the data dirs etcd-installer keeps rather than
// deletes: moved aside by member remove, restore, migrate (the
// distribution's data, a failed attempt) or by hand as doctor suggests.
// The first group of digits is the day it was kept.
var keptSuffix = regexp.MustCompile(`\.(removed|pre-restore|failed-restore|old|failed|etcd-[0-9A-Za-z.]+)-([0-9]{8})(-[0-9]{6})?$`)

func (d *doctor) isMember(name string) bool {
	_, ok := d.inv.Member(name)
	return ok
}

// keptAge is how long a kept data dir goes unmentioned.
const keptAge = 7 * 24 * time.Hour

// keptDirs lists the kept data dirs older than a week, with the command
// that removes them: they are the operator's to delete, never ours.
func (d *doctor) keptDirs() string {
	var kept []string
	dataDir := d.inv.Cluster.DataDir
	for _, dir := range []string{dataDir, path.Dir(dataDir)} {
		entries, err := d.t.FS.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := e.Name()
			// A member's own data dir is never a kept one, whatever its
			// name looks like.
			if !e.IsDir() || !keptSuffix.MatchString(name) || (dir != dataDir && !strings.HasPrefix(name, path.Base(dataDir)+".")) ||
				(dir == dataDir && d.isMember(name)) {
				continue
			}
			kept = append(kept, path.Join(dir, name))
		}
	}
	if len(kept) == 0 {
		return "no kept data dirs (*.removed-*, *.pre-restore-*, *.old-*)"
	}
	now := d.o.Now()
	var old []string
	var days []string
	oldest := now
	for _, p := range kept {
		day, err := time.ParseInLocation("20060102", keptSuffix.FindStringSubmatch(path.Base(p))[2], time.Local)
		if err != nil {
			continue
		}
		if day.Before(oldest) {
			oldest = day
		}
		if now.Sub(day) > keptAge {
			old = append(old, p)
			days = append(days, fmt.Sprintf("%s (kept %s)", p, day.Format("2006-01-02")))
		}
	}
	sort.Strings(old)
	sort.Strings(days)
	if len(old) == 0 {
		return fmt.Sprintf("%d kept data dir(s), the oldest from %s: listed here once older than a week", len(kept), oldest.Format("2006-01-02"))
	}
	d.add(Warn, "kept-dirs", "once you are sure they are not needed (a backup of the cluster is the better copy): "+shquote.Join(append([]string{"rm", "-rf", "--"}, old...)),
		"%d data dir(s) kept more than a week ago, taking disk space: %s", len(old), strings.Join(days, ", "))
	return ""
}

func (d *doctor) strayDirs() string {
	entries, err := d.t.FS.ReadDir(d.inv.Cluster.DataDir)
	if err != nil {
		d.add(Skip, "stray-dirs", "", "cannot list %s: %v", d.inv.Cluster.DataDir, err)
		return ""
	}
	mine := map[string]bool{}
	for _, m := range d.inv.Members {
		mine[m.Name] = true
	}
	for _, e := range entries {
		if !e.IsDir() || mine[e.Name()] || keptSuffix.MatchString(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := path.Join(d.inv.Cluster.DataDir, e.Name())
		if info, err := host.InspectDataDir(d.t.FS, p); err == nil && info.Initialized {
			var names []string
			for _, m := range info.Members {
				names = append(names, m.Name)
			}
			d.add(Warn, "stray-dirs", "if it is not needed, move it aside: mv "+p+" "+p+".old-"+time.Now().Format("20060102"),
				"%s holds an etcd data dir not in the inventory (members %s): a single node started before the inventory?", p, strings.Join(names, ", "))
		}
	}
	return "no etcd data dir in " + d.inv.Cluster.DataDir + " but the members' own and kept ones"
}

func (d *doctor) ports() string {
	var free []string
	for _, u := range []string{d.env["ETCD_LISTEN_CLIENT_URLS"], d.env["ETCD_LISTEN_PEER_URLS"], d.env["ETCD_LISTEN_METRICS_URLS"]} {
		for _, raw := range strings.Split(u, ",") {
			pu, err := url.Parse(raw)
			if raw == "" || err != nil || pu.Host == "" {
				continue
			}
			l, err := net.Listen("tcp", pu.Host)
			if err == nil {
				l.Close()
				free = append(free, pu.Host)
				continue
			}
			who := ""
			if d.t.Runner != nil {
				if out, err := d.t.Runner.Run(context.Background(), nil, "ss", "-Hltnp", "sport = :"+pu.Port()); err == nil {
					who = strings.TrimSpace(string(out))
				}
			}
			d.add(Fail, "ports", "stop whatever listens there ("+who+"), or give the member other ports in the inventory",
				"%s cannot be bound while etcd is stopped: %v", pu.Host, err)
		}
	}
	if len(free) == 0 && !d.found("ports") {
		d.add(Skip, "ports", "", "no listen URLs to try (see env-file)")
		return ""
	}
	return strings.Join(free, ", ") + " can be bound: nothing else holds the member's ports"
}

func (d *doctor) fsync() string {
	dir := d.t.FS.Path(d.inv.Cluster.DataDir)
	f, err := os.CreateTemp(dir, ".doctor-fsync-*")
	if err != nil {
		// The data dir check reports a missing parent.
		d.add(Skip, "fsync", "", "cannot write a test file in %s: %v", d.inv.Cluster.DataDir, err)
		return ""
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 8192)
	var lat []time.Duration
	for range 64 {
		if _, err := f.Write(block); err != nil {
			d.add(Skip, "fsync", "", "cannot write in %s: %v", d.inv.Cluster.DataDir, err)
			return ""
		}
		start := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			d.add(Warn, "fsync", "check the disk and its file system (dmesg)", "fdatasync in %s failed: %v", d.inv.Cluster.DataDir, err)
			return ""
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[len(lat)*99/100]
	if p99 > d.o.FsyncThreshold {
		d.add(Warn, "fsync", "put the data dir on an SSD without other heavy writers; etcd's guidance is a p99 WAL fsync under 10 ms",
			"fdatasync in %s: p99 %s over %d writes, above %s (slow disks cause leader elections and timeouts)",
			d.inv.Cluster.DataDir, p99.Round(time.Microsecond), len(lat), d.o.FsyncThreshold)
	} else {
		d.add(OK, "fsync", "", "fdatasync in %s: p99 %s", d.inv.Cluster.DataDir, p99.Round(time.Microsecond))
	}
	return ""
}

func (d *doctor) peers(ctx context.Context) string {
	n := 0
	for i := range d.inv.Members {
		m := &d.inv.Members[i]
		if m.Name == d.t.Host.Name {
			continue
		}
		n++
		for _, raw := range []string{d.inv.PeerURL(m), d.inv.ClientURL(m)} {
			u, _ := url.Parse(raw)
			dialer := net.Dialer{Timeout: 2 * time.Second, Resolver: d.o.Resolver}
			c, err := dialer.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				d.add(Warn, "peers", "check that etcd runs on "+m.Name+" and that no firewall blocks port "+u.Port(),
					"%s (%s) is unreachable from %s: %v", m.Name, raw, d.t.Host.Name, err)
				continue
			}
			c.Close()
		}
	}
	if n == 0 {
		return "no other members"
	}
	return fmt.Sprintf("the %d other members answer on their peer and client ports", n)
}

func (d *doctor) clocks(ctx context.Context) string {
	dialer := net.Dialer{Timeout: 3 * time.Second, Resolver: d.o.Resolver}
	client := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: d.o.TLS, DialContext: dialer.DialContext}}
	compared := 0
	for i := range d.inv.Members {
		m := &d.inv.Members[i]
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.inv.ClientURL(m)+"/version", nil)
		before := d.o.Now()
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		after := d.o.Now()
		date, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			continue
		}
		compared++
		local := before.Add(after.Sub(before) / 2)
		skew := date.Sub(local)
		if skew < 0 {
			skew = -skew
		}
		// Date has whole seconds: the true skew is within a second of this.
		if skew > d.o.MaxClockSkew {
			d.add(Warn, "clock", "run time synchronisation (chrony or systemd-timesyncd) on every member; etcd warns above 1 s",
				"the clock of %s differs from %s's by about %s", m.Name, d.t.Host.Name, skew.Round(time.Second))
		}
	}
	if compared == 0 {
		d.add(Skip, "clock", "", "no member answered /version: clocks not compared")
		return ""
	}
	return fmt.Sprintf("the clocks of %d members are within %s of this one", compared, d.o.MaxClockSkew)
}

// srvRecords checks the SRV records dns-srv bootstrap needs, as this host
// resolves them: every member under the peers' name with its peer port (a
// new member waits until it finds itself and its peers there) and under
// the clients' name with its client port (etcdctl --discovery-srv).
func (d *doctor) srvRecords(ctx context.Context) string {
	server, client := d.inv.SRVNames()
	fix := "serve the records `etcd-installer render " + d.inv.Source + "` writes (_cluster/dnsmasq.conf or _cluster/bind.zone) on the DNS server this host uses"
	n := 0
	for _, name := range []struct {
		name string
		sev  Severity
		port func(m *inventory.Member) int
	}{
		{server, Fail, func(m *inventory.Member) int { return m.PeerPort }},
		{client, Warn, func(m *inventory.Member) int { return m.ClientPort }},
	} {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, srvs, err := d.o.Resolver.LookupSRV(lctx, "", "", name.name)
		cancel()
		if err != nil {
			d.add(name.sev, "dns-srv", fix, "%s does not resolve on %s: %v", name.name, d.t.Host.Name, err)
			continue
		}
		have := map[string]bool{}
		for _, s := range srvs {
			have[strings.ToLower(strings.TrimSuffix(s.Target, "."))+":"+strconv.Itoa(int(s.Port))] = true
		}
		var missing []string
		for i := range d.inv.Members {
			m := &d.inv.Members[i]
			if want := strings.ToLower(m.Address) + ":" + strconv.Itoa(name.port(m)); !have[want] {
				missing = append(missing, m.Name+" ("+want+")")
			}
		}
		if len(missing) > 0 {
			d.add(name.sev, "dns-srv", fix, "%s has no record for %s", name.name, strings.Join(missing, ", "))
			continue
		}
		n++
	}
	if n < 2 {
		return ""
	}
	return fmt.Sprintf("%s and %s list every member with its ports", server, client)
}

// discoveryService checks what v3 discovery bootstrap needs on the
// discovery service, as this host reaches it: the size key a new member
// waits for, holding the inventory's member count, and a place for this
// member among those the token has (etcd refuses it once they are taken).
func (d *doctor) discoveryService(ctx context.Context, m *inventory.Member) string {
	// etcd registers before it writes the WAL (its data dir has member/
	// already): only a WAL means the member has joined.
	if _, err := d.t.FS.Stat(path.Join(d.inv.DataDir(m), "member", "wal")); err == nil {
		d.add(Skip, "discovery", "", "%s has bootstrapped (its data dir has a WAL): it no longer needs the discovery service", m.Name)
		return ""
	}
	disc := d.inv.Cluster.Discovery
	eps := strings.Join(disc.Endpoints, ",")
	// The token is as good as a password to the discovery service: named
	// as a placeholder, as the member's STATUS does.
	key := discovery.SizeKey("TOKEN")
	fix := fmt.Sprintf("run the _cluster/discovery.sh that `etcd-installer render %s` writes, once (it puts %d at %s, TOKEN being cluster.discovery.token)",
		d.inv.Source, len(d.inv.Members), key)
	cli, err := discoveryClient(d.inv)
	if err != nil {
		d.add(Fail, "discovery", "", "discovery endpoints %s: %v", eps, err)
		return ""
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := discovery.Read(cctx, cli, disc.Token)
	switch {
	case errors.Is(err, discovery.ErrSizeNotSet):
		d.add(Fail, "discovery", fix, "%s is not set on the discovery service at %s: %s waits for it", key, eps, m.Name)
		return ""
	case errors.Is(err, discovery.ErrBadSize):
		d.add(Fail, "discovery", fix, "%s on the discovery service at %s: %v", key, eps, err)
		return ""
	case err != nil:
		d.add(Fail, "discovery", "check that the discovery service runs and that "+d.t.Host.Name+" reaches it",
			"the discovery service at %s does not answer from %s: %v", eps, d.t.Host.Name, err)
		return ""
	}
	if st.Size != len(d.inv.Members) {
		d.add(Warn, "discovery", fix, "%s holds %d, but the inventory has %d members: the cluster would form with the first %d to register",
			key, st.Size, len(d.inv.Members), st.Size)
	}
	mine, err := discovery.MemberKey(disc.Token, m.Name, []string{d.inv.PeerURL(m)})
	if err != nil {
		d.add(Fail, "discovery", "", "%v", err)
		return ""
	}
	refused := "add a member to a running cluster with `etcd-installer member add` (move the data dir etcd began aside first); a new cluster needs a new token"
	switch place := st.Place(mine); {
	case place < 0 && st.Full():
		d.add(Fail, "discovery", refused, "all %d places of the token on %s are taken by other members: %s would be refused", st.Size, eps, m.Name)
	case place >= st.Size:
		d.add(Fail, "discovery", refused, "%s registered on %s after the token's %d places were taken (it is number %d): it is refused", m.Name, eps, st.Size, place+1)
	case place >= 0:
		return fmt.Sprintf("%s registered on %s; %d of %d members so far", m.Name, eps, st.Registered, st.Size)
	default:
		return fmt.Sprintf("%s holds %d on %s; %d registered so far", key, st.Size, eps, st.Registered)
	}
	return ""
}

// discoveryClient is a client of the discovery service configured as the
// member's etcd configures its own: the inventory's endpoints and its
// discovery-* options (TLS, user), through etcd's flags and defaults.
func discoveryClient(inv *inventory.Inventory) (*clientv3.Client, error) {
	disc := inv.Cluster.Discovery
	args := []string{"--discovery-endpoints=" + strings.Join(disc.Endpoints, ","), "--discovery-token=" + disc.Token}
	for k, v := range inv.Cluster.Options {
		if strings.HasPrefix(k, "discovery-") {
			args = append(args, "--"+k+"="+v)
		}
	}
	c, err := node.Parse(args, nil)
	if err != nil {
		return nil, err
	}
	spec := c.Etcd.DiscoveryCfg.ConfigSpec
	cfg, err := clientv3.NewClientConfig(&spec, zap.NewNop())
	if err != nil {
		return nil, err
	}
	cfg.Logger = zap.NewNop()
	return clientv3.New(*cfg)
}

// ReachedAsFlag tells etcd-installer run over SSH which host it runs on:
// the SSH connection to the host's target proves it, where the host's own
// names and addresses may not (a target behind NAT).
const ReachedAsFlag = "--reached-as"

// Hosts checks the named hosts at once. The checks of disks, ports and
// clocks must run on the host itself: Run runs here for this machine
// (hosts.This); for the others, etcd-installer on the host, reached over
// SSH, runs them with a copy of the inventory at inventoryPath.
func Hosts(ctx context.Context, inv *inventory.Inventory, inventoryPath string, hosts *workflow.Hosts, names []string, o Options) ([]Finding, error) {
	found := make([][]Finding, len(names))
	err := parallel.Each(names, func(k int, name string) error {
		h, ok := inv.Host(name)
		if !ok {
			return inv.UnknownHost("--host", name)
		}
		if name == hosts.This {
			found[k] = Run(ctx, inv, workflow.Local(h), o)
			return nil
		}
		t, err := hosts.Target(name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		out, err := workflow.RemoteInstaller(ctx, t.Runner, inventoryPath, "doctor", ReachedAsFlag, name, "-o", "json")
		if err != nil && strings.Contains(string(out)+err.Error(), "unknown flag: "+ReachedAsFlag) {
			// An older etcd-installer on the host (mid-upgrade): its
			// --host meant this very thing.
			out, err = workflow.RemoteInstaller(ctx, t.Runner, inventoryPath, "doctor", "--host", name, "-o", "json")
		}
		if jerr := json.Unmarshal(out, &found[k]); jerr != nil {
			if err == nil {
				err = jerr
			}
			return fmt.Errorf("doctor on %s: %w", name, err)
		}
		return nil
	})
	return slices.Concat(found...), err
}

// space asks the member for its raised alarms (NOSPACE, CORRUPT) and how
// much of its backend is free pages, as status does for every member.
func (d *doctor) space(ctx context.Context, m *inventory.Member) string {
	ep := d.inv.ClientURL(m)
	c, err := cluster.Dial([]string{ep}, d.o.TLS)
	if err != nil {
		d.add(Skip, "space", "", "cannot ask %s: %v", ep, err)
		return ""
	}
	defer c.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := c.Status(sctx, ep)
	if st.Err != nil {
		d.add(Skip, "space", "", "%s does not answer: %v", ep, st.Err)
		return ""
	}
	row := cluster.EndpointRow{Name: m.Name, Endpoint: ep, ID: fmt.Sprintf("%x", st.ID), DBSize: st.DBSize, DBSizeInUse: st.DBSizeInUse, Errors: st.Errors}
	for _, a := range cluster.Alarms(d.inv, []cluster.EndpointRow{row}) {
		msg, fix, _ := strings.Cut(a, " Fix: ")
		d.add(Fail, "space", fix, "%s", msg)
	}
	for _, w := range cluster.Fragmented([]cluster.EndpointRow{row}) {
		msg, fix, _ := strings.Cut(w, "; defragment it")
		d.add(Warn, "space", "defragment it"+fix, "%s", msg)
	}
	return fmt.Sprintf("no alarm; backend %s, %s in use", humanize.IBytes(uint64(st.DBSize)), humanize.IBytes(uint64(st.DBSizeInUse)))
}
