package localcluster_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// supervised starts a three-member local cluster under Supervise with
// quick back-offs; done yields Supervise's result.
func supervised(t *testing.T, burst int) (*localcluster.Cluster, *etcdtest.Buffer, context.CancelFunc, <-chan error) {
	t.Helper()
	lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
	out := &etcdtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- lc.Supervise(ctx, localcluster.SuperviseOptions{Out: out, Health: 200 * time.Millisecond, Burst: burst,
			Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	}()
	return lc, out, cancel, done
}

func waitFor(t *testing.T, out *etcdtest.Buffer, what string) {
	t.Helper()
	if !etcdtest.Eventually(time.Minute, 50*time.Millisecond, func() bool { return strings.Contains(out.String(), what) }) {
		t.Fatalf("no %q in a minute:\n%s", what, out.String())
	}
}

// A member killed is reported at once with how it ended, restarted, and
// the cluster is healthy again; Ctrl-C (the context) ends supervision
// without an error.
func TestSuperviseRestartsAKilledMember(t *testing.T) {
	lc, out, cancel, done := supervised(t, 5)
	tg, _ := lc.Target("m1")
	lc.Processes("m1").Kill(tg.Unit())
	waitFor(t, out, "m1 killed by signal KILL after")
	waitFor(t, out, "m1 restarted")
	// Healthy again, and what run last said of the cluster says so.
	if !etcdtest.Eventually(time.Minute, 50*time.Millisecond, func() bool {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		said := ""
		for _, l := range lines {
			if strings.HasPrefix(l, "run: cluster ") {
				said = l
			}
		}
		// Healthy throughout (a restart quicker than a check) says nothing.
		return (said == "" || strings.HasPrefix(said, "run: cluster healthy: 3 of 3")) && localclustertest.Status(t, lc).Healthy
	}) {
		t.Fatalf("not healthy again:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("supervision ended with %v", err)
	}
}

// A member that exits with a code restarting cannot fix (here 78, a bad
// setting) stays down, with its reason and last lines, while the others
// run on; one that keeps failing ends supervision.
func TestSuperviseGivesUpOnAFailingMember(t *testing.T) {
	lc, out, cancel, done := supervised(t, 5)
	tg, _ := lc.Target("m2")
	conf, err := tg.FS.ReadFile(layout.EtcdConf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.FS.WriteFile(layout.EtcdConf, append(conf, "ETCD_NO_SUCH_SETTING=1\n"...), 0o640, "", ""); err != nil {
		t.Fatal(err)
	}
	lc.Processes("m2").Kill(tg.Unit())
	waitFor(t, out, "m2 is not restarted: invalid configuration")
	if !strings.Contains(out.String(), "ETCD_NO_SUCH_SETTING") {
		t.Errorf("the member's last lines, which name the fault, are not shown:\n%s", out.String())
	}
	waitFor(t, out, "2 of 3 members healthy")
	select {
	case err := <-done:
		t.Fatalf("supervision ended (%v) although two members run:\n%s", err, out.String())
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("%v", err)
	}

	lc, out, _, done = supervised(t, 3)
	tg, _ = lc.Target("m0")
	p := lc.Processes("m0")
	killed := map[int]bool{}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			if !errors.Is(err, localcluster.ErrKeepsFailing) || !strings.Contains(err.Error(), "failed 3 times") || len(killed) != 3 {
				t.Errorf("%v (killed %d times)", err, len(killed))
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		// Each new process of m0 is killed once, as soon as it runs.
		if st, _ := tg.Services.State(context.Background(), tg.Unit()); st.MainPID != 0 && !killed[st.MainPID] {
			killed[st.MainPID] = true
			p.Kill(tg.Unit())
		}
	}
	t.Fatalf("a member killed again and again is still supervised after %d kills:\n%s", len(killed), out.String())
}

// Members stopped from outside (SIGTERM, as `kill` or a shutdown sends)
// exit cleanly and are not restarted; with none left, supervision ends.
func TestSuperviseEndsWhenEveryMemberStopped(t *testing.T) {
	lc, out, _, done := supervised(t, 5)
	for _, tg := range lc.Targets {
		lc.Processes(tg.Host.Name).Signal(tg.Unit(), syscall.SIGTERM)
	}
	select {
	case err := <-done:
		if !errors.Is(err, localcluster.ErrAllStopped) {
			t.Errorf("%v", err)
		}
		if strings.Count(out.String(), "not restarted") != 3 {
			t.Errorf("want three members not restarted:\n%s", out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("still supervising nothing:\n%s", out.String())
	}
}
