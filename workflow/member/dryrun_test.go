package member_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
	"github.com/etcd-appliance/appliance/workflow/member"
)

// A dry run of member add and member remove asks the running cluster,
// says what it would do per host, and changes nothing: the member list,
// the members' processes, and every file of the hosts stay as they were.
func TestMemberDryRunChangesNothing(t *testing.T) {
	inv := localclustertest.Inventory(t, 5, "")
	lc := localclustertest.New(t, inv)
	localclustertest.StartOnly(t, lc, "m0", "m1", "m2")
	ctx := context.Background()
	pids := func() map[string]int {
		out := map[string]int{}
		for _, name := range []string{"m0", "m1", "m2", "m3"} {
			tg, _ := lc.Target(name)
			st, err := tg.Services.State(ctx, tg.Unit())
			if err != nil {
				t.Fatal(err)
			}
			out[name] = st.MainPID
		}
		return out
	}
	trees := func() map[string]string {
		out := map[string]string{}
		for _, name := range []string{"m0", "m1", "m2", "m3", "m4"} {
			for p, v := range hosttest.Snapshot(t, localclustertest.HostTree(lc, name)) {
				out[p] = v
			}
		}
		for p, v := range hosttest.Snapshot(t, lc.Inv.DataDir(localclustertest.Member(t, inv, "m3"))) {
			out[p] = v
		}
		return out
	}
	voting, treesBefore, pidsBefore := localclustertest.Voting(t, lc), trees(), pids()

	add := workflow.NewPlan(true, localclustertest.Log(t))
	tg3, _ := lc.Target("m3")
	if err := member.Add(ctx, lc.Inv, "m3", tg3, member.Options{Dial: lc.Dial, Wait: time.Minute, Plan: add}, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	if got := localclustertest.Actions(add, ""); !strings.HasPrefix(got, "add m3 (http://127.0.0.1:") || !strings.Contains(got, "; promote m3 to a voting member") {
		t.Errorf("member add plan for the cluster: %s", got)
	}
	if got := localclustertest.Actions(add, "m3"); !strings.HasPrefix(got, "write /etc/etcd/etcd.conf (new); ") || !strings.HasSuffix(got, "; enable etcd.service; start etcd.service") {
		t.Errorf("member add plan for m3: %s", got)
	}

	remove := workflow.NewPlan(true, localclustertest.Log(t))
	tg2, _ := lc.Target("m2")
	if err := member.Remove(ctx, lc.Inv, "m2", &tg2, member.Options{Dial: lc.Dial, Plan: remove}, localclustertest.Log(t)); err != nil {
		t.Fatal(err)
	}
	if got := localclustertest.Actions(remove, ""); !strings.HasPrefix(got, "remove m2 (") || !strings.Contains(got, "2 voting members remain") {
		t.Errorf("member remove plan for the cluster: %s", got)
	}
	if got := localclustertest.Actions(remove, "m2"); !strings.HasPrefix(got, "stop etcd.service; disable etcd.service; move ") || !strings.Contains(got, "/m2 aside to ") {
		t.Errorf("member remove plan for m2: %s", got)
	}

	if got := localclustertest.Voting(t, lc); strings.Join(got, ",") != strings.Join(voting, ",") {
		t.Errorf("voting members %v, before the dry runs %v", got, voting)
	}
	if got := pids(); got["m0"] != pidsBefore["m0"] || got["m1"] != pidsBefore["m1"] || got["m2"] != pidsBefore["m2"] || got["m3"] != 0 {
		t.Errorf("processes %v, before %v", got, pidsBefore)
	}
	if d := hosttest.SameSnapshot(treesBefore, trees()); d != "" {
		t.Errorf("the dry runs changed files:\n%s", d)
	}
}
