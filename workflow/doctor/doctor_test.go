package doctor

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/datadir/datadirtest"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

func findings(fs []Finding, check string, sev Severity) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Check == check && f.Severity == sev {
			out = append(out, f)
		}
	}
	return out
}

func expectFinding(t *testing.T, fs []Finding, check string, sev Severity, msg, fix string) {
	t.Helper()
	for _, f := range findings(fs, check, sev) {
		if strings.Contains(f.Message, msg) && strings.Contains(f.Fix, fix) {
			return
		}
	}
	t.Errorf("no %s finding %q (fix %q) in:\n%s", sev, msg, fix, dump(fs))
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.Level + " " + f.Check + ": " + f.Message + " | fix: " + f.Fix + "\n")
	}
	return b.String()
}

// TestDoctorFindsInjectedFaults starts a real local cluster, breaks it in
// the ways operators meet, and expects doctor to name each fault and its
// fix.
func TestDoctorFindsInjectedFaults(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	t0, _ := lc.Target("m0")
	// Kept data dirs: one from 10 days ago is listed with the command
	// that removes it, one from today is not.
	m0dir := lc.Inv.DataDir(localclustertest.Member(t, lc.Inv, "m0"))
	now := time.Now()
	oldKept := m0dir + ".removed-" + now.AddDate(0, 0, -10).Format("20060102-150405")
	newKept := m0dir + ".pre-restore-" + now.Format("20060102-150405")
	for _, p := range []string{oldKept, newKept} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	healthy := Run(ctx, lc.Inv, t0, Options{})
	for _, f := range healthy {
		if f.Severity == Fail {
			t.Errorf("healthy cluster: %s", dump(healthy))
			break
		}
	}
	t.Logf("doctor on a healthy host:\n%s", dump(healthy))
	// Every check prints a line, ok or not (round 1 printed three on a
	// healthy host).
	for _, check := range []string{"env-file", "initial-cluster", "unit", "data-dir", "stray-dirs", "kept-dirs", "ports", "fsync", "certificates", "peers", "clock"} {
		n := 0
		for _, f := range healthy {
			if f.Check == check {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no line for the %s check:\n%s", check, dump(healthy))
		}
	}
	expectFinding(t, healthy, "kept-dirs", Warn, oldKept+" (kept "+now.AddDate(0, 0, -10).Format("2006-01-02")+")", "rm -rf -- "+oldKept)
	for _, f := range healthy {
		if strings.Contains(f.Message+f.Fix, newKept) {
			t.Errorf("a dir kept today is listed: %s", f.Message)
		}
	}

	// Faults on m0, with m0 stopped; m2 stopped too (a peer down).
	m0 := localclustertest.Member(t, lc.Inv, "m0")
	t0.Services.Stop(ctx, t0.Unit())
	t2, _ := lc.Target("m2")
	t2.Services.Stop(ctx, t2.Unit())
	dir := lc.Inv.DataDir(m0)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := t0.FS.Path(layout.EtcdConf)
	b, _ := os.ReadFile(conf)
	b = []byte(strings.Replace(string(b), "ETCD_INITIAL_CLUSTER=m0=", "ETCD_INITIAL_CLUSTER=mX=", 1) + "ETCD_NAEM=typo\n")
	os.WriteFile(conf, b, 0o640)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(m0.ClientPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	fs := Run(ctx, lc.Inv, t0, Options{FsyncThreshold: time.Nanosecond, Now: func() time.Time { return time.Now().Add(-10 * time.Second) }})
	expectFinding(t, fs, "data-dir", Fail, "has mode 0755", "chmod 700 "+dir)
	expectFinding(t, fs, "env-file", Fail, "ETCD_NAEM", "remove or correct")
	expectFinding(t, fs, "initial-cluster", Fail, "does not list m0=", "ETCD_INITIAL_CLUSTER")
	expectFinding(t, fs, "ports", Fail, "127.0.0.1:"+strconv.Itoa(m0.ClientPort)+" cannot be bound", "stop whatever listens there")
	expectFinding(t, fs, "peers", Warn, "m2 (http://127.0.0.1:", "check that etcd runs on m2")
	expectFinding(t, fs, "fsync", Warn, "above 1ns", "SSD")
	// Date headers have whole seconds: a 10 s skew reads as 9 or 10 s.
	if f := findings(fs, "clock", Warn); len(f) == 0 || !(strings.Contains(f[0].Message, "about 9s") || strings.Contains(f[0].Message, "about 10s")) {
		t.Errorf("no clock skew finding:\n%s", dump(fs))
	}
	expectFinding(t, fs, "unit", Warn, "etcd.service is inactive", "systemctl start")

	// Another cluster's data dir in place of m0's.
	os.RemoveAll(dir)
	datadirtest.WriteMembersDB(t, "/", dir, map[string]string{"default": "http://localhost:2380"})
	fs = Run(ctx, lc.Inv, t0, Options{})
	expectFinding(t, fs, "data-dir", Fail, "without member m0", "")
}

func itoa(i int) string {
	return strings.TrimSpace(strings.ReplaceAll(time.Duration(i).String(), "ns", ""))
}
