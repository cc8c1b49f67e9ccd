package member_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/progress"
	"github.com/etcd-appliance/appliance/workflow/apply"
	"github.com/etcd-appliance/appliance/workflow/certs"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	"github.com/etcd-appliance/appliance/workflow/member"
)

func TestMemberAddRemoveUnderLoad(t *testing.T) {
	inv := localclustertest.Inventory(t, 5, "")
	lc := localclustertest.New(t, inv)
	ctx := context.Background()
	first := []string{"m0", "m1", "m2"}
	localclustertest.StartOnly(t, lc, first...)
	eps := lc.Inv.ClientURLs()[:3]
	w := localclustertest.StartWriter(t, lc, eps)
	opts := member.Options{Dial: lc.Dial, Wait: 2 * time.Minute}

	for _, name := range []string{"m3", "m4"} {
		tg, _ := lc.Target(name)
		if err := member.Add(ctx, lc.Inv, name, tg, opts, localclustertest.Log(t)); err != nil {
			t.Fatalf("member add %s: %v", name, err)
		}
	}
	if got := localclustertest.Voting(t, lc); len(got) != 5 {
		t.Fatalf("after adding: voting members %v", got)
	}
	// Re-running an add that completed changes nothing.
	tg3, _ := lc.Target("m3")
	if err := member.Add(ctx, lc.Inv, "m3", tg3, opts, localclustertest.Log(t)); err != nil {
		t.Errorf("member add again: %v", err)
	}
	// The bootstrap members' files now list all five; applying them
	// rewrites the file but restarts nothing (etcd ignores bootstrap
	// settings once initialized).
	tg0, _ := lc.Target("m0")
	res, err := apply.Host(ctx, lc.Inv, tg0, apply.Options{Dial: lc.Dial}, localclustertest.Log(t))
	if err != nil || res.Restarted || len(res.Files) != 1 {
		t.Errorf("apply after member add: %s %v", res.Summary(), err)
	}

	for _, name := range []string{"m4", "m3"} {
		tg, _ := lc.Target(name)
		if err := member.Remove(ctx, lc.Inv, name, &tg, opts, localclustertest.Log(t)); err != nil {
			t.Fatalf("member remove %s: %v", name, err)
		}
		matches, _ := filepath.Glob(lc.Inv.DataDir(localclustertest.Member(t, lc.Inv, name)) + ".removed-*")
		if len(matches) != 1 {
			t.Errorf("%s: data dir not moved aside: %v", name, matches)
		}
	}
	if got := localclustertest.Voting(t, lc); len(got) != 3 {
		t.Fatalf("after removing: voting members %v", got)
	}

	acked, failed := w.Finish()
	if len(failed) > 0 {
		t.Errorf("%d writes failed during membership changes, first: %v", len(failed), failed[0])
	}
	if len(acked) < 50 {
		t.Errorf("only %d writes went through", len(acked))
	}
	c, err := cluster.Dial(eps, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.KV().Get(ctx, "w/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if int(resp.Count) != len(acked) {
		t.Errorf("%d keys in the cluster, %d acknowledged", resp.Count, len(acked))
	}
	t.Logf("%d writes acknowledged during 2 adds and 2 removes, %d failed", len(acked), len(failed))
}

func TestMemberRemoveRefusesQuorumLoss(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	lc.Processes("m1").Kill(unitOf(lc, "m1"))
	tg, _ := lc.Target("m2")
	err := member.Remove(ctx, lc.Inv, "m2", &tg, member.Options{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t))
	if err == nil || !strings.Contains(err.Error(), "1 of 2 remaining voting members would be healthy and quorum is 2") {
		t.Errorf("got %v", err)
	}
	if got := localclustertest.Voting(t, lc); len(got) != 3 {
		t.Errorf("a member was removed anyway: %v", got)
	}
	// A name that is nowhere (a typo) is an error, not a quiet success.
	if err := member.Remove(ctx, lc.Inv, "m9", nil, member.Options{Dial: lc.Dial}, localclustertest.Log(t)); !errors.Is(err, member.ErrNoSuchMember) ||
		!strings.Contains(err.Error(), "m0, m1, m2") {
		t.Errorf("removing a typo: %v", err)
	}
}

func unitOf(lc *localcluster.Cluster, name string) string {
	tg, _ := lc.Target(name)
	return tg.Unit()
}

// A follower forwards a promotion to the leader without the caller's
// identity, which the leader refuses once auth is on (etcd-io/etcd#14070):
// member add must promote through the leader even when it can only reach
// a follower.
func TestMemberAddWithAuthThroughAFollower(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "root-password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	inv := localclustertest.TLSInventory(t, 5, fmt.Sprintf("auth = true\nroot_password_file = %q\n", pwFile))
	lc := localclustertest.New(t, inv)
	ctx := context.Background()
	localclustertest.StartOnly(t, lc, "m0", "m1", "m2")
	m, err := lc.Dial(lc.Inv.ClientURLs()[:3])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := cluster.EnsureAuth(ctx, lc.Inv, m, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	var follower string
	for _, ep := range lc.Inv.ClientURLs()[:3] {
		if st := m.Status(ctx, ep); st.Err == nil && st.Leader != st.ID {
			follower = ep
			break
		}
	}
	if follower == "" {
		t.Fatal("no follower among the first three members")
	}
	onlyFollower := func([]string) (cluster.Membership, error) { return lc.Dial([]string{follower}) }
	tg, _ := lc.Target("m3")
	files, err := certs.HostFiles(lc.Certs, lc.Inv, "m3")
	if err != nil {
		t.Fatal(err)
	}
	opts := member.Options{Dial: onlyFollower, Extra: files, Wait: time.Minute}
	if err := member.Add(ctx, lc.Inv, "m3", tg, opts, localclustertest.Log(t)); err != nil {
		t.Fatalf("member add through follower %s with auth on: %v", follower, err)
	}
	if got := localclustertest.Voting(t, lc); len(got) != 4 {
		t.Fatalf("voting members after the add: %v", got)
	}
}

// A member whose disk died: its data dir gone, etcd refuses to restart it
// as itself (exit 81, which systemd does not restart), and member replace
// puts it back under a writer with no failed write; run again, it changes
// nothing.
func TestMemberReplaceLostDisk(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	w := localclustertest.StartWriter(t, lc, lc.Inv.ClientURLs()[:2])
	unit := unitOf(lc, "m2")
	procs := lc.Processes("m2")
	procs.Kill(unit)
	dir := lc.Inv.DataDir(localclustertest.Member(t, lc.Inv, "m2"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := procs.Start(ctx, unit); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, _ := procs.State(ctx, unit)
		if st.Active == "failed" {
			if st.ExitStatus != 81 || !strings.HasPrefix(st.Status, "member lost its data: the cluster already has member m2, but its data dir") ||
				!strings.Contains(st.Status, "etcd-installer member replace INVENTORY m2") {
				t.Fatalf("restarted on an empty data dir: exit %d, STATUS %q", st.ExitStatus, st.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("m2 on an empty data dir is %s: %s", st.Active, st.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	tg, _ := lc.Target("m2")
	var prog strings.Builder
	opts := member.Options{Dial: lc.Dial, Wait: 2 * time.Minute, Progress: progress.To{W: &prog}}
	if err := member.Replace(ctx, lc.Inv, "m2", tg, opts, localclustertest.Log(t)); err != nil {
		t.Fatalf("member replace: %v", err)
	}
	if !strings.Contains(prog.String(), "Z m2 catching up: ") || !strings.Contains(prog.String(), ", ended in ") || strings.Contains(prog.String(), "catching up: 0 B") {
		t.Errorf("the learner's catch-up was not reported: %q", prog.String())
	}
	opts.Progress = progress.To{}
	if got := localclustertest.Voting(t, lc); len(got) != 3 {
		t.Fatalf("after replace: voting members %v", got)
	}
	if matches, _ := filepath.Glob(dir + ".removed-*"); len(matches) != 1 {
		t.Errorf("the data dir etcd began is not kept aside: %v", matches)
	}
	if err := member.Replace(ctx, lc.Inv, "m2", tg, opts, localclustertest.Log(t)); err == nil {
		// A second replace of a healthy member replaces it again: allowed,
		// as it keeps quorum; the cluster must still have three.
		if got := localclustertest.Voting(t, lc); len(got) != 3 {
			t.Fatalf("after a second replace: voting members %v", got)
		}
	} else {
		t.Errorf("member replace again: %v", err)
	}
	acked, failed := w.Finish()
	if len(failed) > 0 {
		t.Errorf("%d writes failed during the replace, first: %v", len(failed), failed[0])
	}
	c, err := cluster.Dial(lc.Inv.ClientURLs(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.KV().Get(ctx, "w/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || int(resp.Count) != len(acked) {
		t.Errorf("%v keys in the cluster, %d acknowledged (%v)", resp, len(acked), err)
	}
	t.Logf("%d writes acknowledged through the lost disk and two replaces, %d failed", len(acked), len(failed))
}

// Replacing a member when another is down would cost quorum: refused,
// nothing changed.
func TestMemberReplaceRefusesQuorumLoss(t *testing.T) {
	lc := localclustertest.New(t, localclustertest.Inventory(t, 3, ""))
	ctx := context.Background()
	if err := lc.Start(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	lc.Processes("m1").Kill(unitOf(lc, "m1"))
	tg, _ := lc.Target("m2")
	err := member.Replace(ctx, lc.Inv, "m2", tg, member.Options{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t))
	if !errors.Is(err, member.ErrQuorumRisk) {
		t.Errorf("got %v, want a quorum refusal", err)
	}
	if got := localclustertest.Voting(t, lc); len(got) != 3 {
		t.Errorf("a member was removed anyway: %v", got)
	}
}
