package doctor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/host/hosttest"
	"github.com/etcd-appliance/appliance/internal/discovery"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
)

// doctor asks a real discovery service what a member bootstrapping
// through it needs: the size key (named, with the script that sets it),
// the inventory's member count in it, and a free place for this member.
func TestDoctorChecksDiscovery(t *testing.T) {
	svc := etcdtest.NewCluster(t, 1)
	svc.Start()
	svc.WaitReady(30 * time.Second)
	cli := etcdtest.Client(t, svc.Endpoints())
	const token = "disc-doctor-1"
	ports := etcdtest.FreePorts(t, 6)
	var b strings.Builder
	fmt.Fprintf(&b, "version = 1\n[cluster]\nname = \"disc\"\nbootstrap = \"discovery\"\n[cluster.discovery]\nendpoints = [%q]\ntoken = %q\n",
		svc.Endpoints()[0], token)
	for i := range 3 {
		fmt.Fprintf(&b, "[[member]]\nname = \"d%d\"\naddress = \"127.0.0.1\"\nclient_port = %d\npeer_port = %d\n", i, ports[2*i], ports[2*i+1])
	}
	inv, err := inventory.Parse("disc.toml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := inv.Host("d0")
	fs := hosttest.NewMemFS()
	check := func() Finding {
		t.Helper()
		tg := workflow.Target{Host: h, FS: fs, Services: &hosttest.Services{}}
		var out []Finding
		for _, f := range Run(context.Background(), inv, tg, Options{}) {
			if f.Check == "discovery" {
				out = append(out, f)
			}
		}
		if len(out) != 1 {
			t.Fatalf("want one discovery finding, got %+v", out)
		}
		return out[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	put := func(k, v string) {
		t.Helper()
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}

	key := "/_etcd/registry/TOKEN/_config/size"
	sizeKey := discovery.SizeKey(token)
	if f := check(); f.Severity != Fail || !strings.Contains(f.Message, key+" is not set on the discovery service at "+svc.Endpoints()[0]+": d0 waits for it") ||
		!strings.Contains(f.Fix, "_cluster/discovery.sh") || !strings.Contains(f.Fix, "it puts 3 at "+key) {
		t.Errorf("size key missing: %+v", f)
	}
	put(sizeKey, "three")
	if f := check(); f.Severity != Fail || !strings.Contains(f.Message, `does not hold a positive member count (it holds "three")`) {
		t.Errorf("size key not a number: %+v", f)
	}
	put(sizeKey, "5")
	if f := check(); f.Severity != Warn || !strings.Contains(f.Message, "holds 5, but the inventory has 3 members") {
		t.Errorf("size differs from the inventory: %+v", f)
	}
	put(sizeKey, "3")
	if f := check(); f.Severity != OK || !strings.Contains(f.Message, "holds 3 on "+svc.Endpoints()[0]+"; 0 registered so far") {
		t.Errorf("ready for bootstrap: %+v", f)
	}
	// An entry etcd ignores (no "name=") takes no place.
	put(discovery.MembersPrefix(token)+"bad", "garbage")
	for i := range 3 {
		put(discovery.MembersPrefix(token)+fmt.Sprintf("%x", 0x1000+i), "other=http://127.0.0.9:2380")
	}
	if f := check(); f.Severity != Fail || !strings.Contains(f.Message, "all 3 places of the token on "+svc.Endpoints()[0]+" are taken by other members: d0 would be refused") {
		t.Errorf("token full: %+v", f)
	}
	mine, err := discovery.MemberKey(token, "d0", []string{inv.PeerURL(&inv.Members[0])})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the places were taken (a race it lost): refused.
	put(mine, "d0="+inv.PeerURL(&inv.Members[0]))
	if f := check(); f.Severity != Fail || !strings.Contains(f.Message, "d0 registered on "+svc.Endpoints()[0]+" after the token's 3 places were taken (it is number 4): it is refused") {
		t.Errorf("registered too late: %+v", f)
	}
	if _, err := cli.Delete(ctx, discovery.MembersPrefix(token)+"1002"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, mine); err != nil {
		t.Fatal(err)
	}
	put(mine, "d0="+inv.PeerURL(&inv.Members[0]))
	if f := check(); f.Severity != OK || !strings.Contains(f.Message, "d0 registered on "+svc.Endpoints()[0]+"; 3 of 3 members so far") {
		t.Errorf("registered: %+v", f)
	}
	for _, f := range Run(context.Background(), inv, workflow.Target{Host: h, FS: fs, Services: &hosttest.Services{}}, Options{}) {
		if strings.Contains(f.Message+f.Fix, token) {
			t.Errorf("doctor names the token: %+v", f)
		}
	}
	// Only a WAL means it joined: etcd makes member/ before it registers.
	fs.MkdirAll(inv.DataDir(&inv.Members[0])+"/member/snap", 0o700, "etcd", "etcd")
	if f := check(); f.Severity == Skip {
		t.Errorf("skipped with member/ but no WAL: %+v", f)
	}
	fs.MkdirAll(inv.DataDir(&inv.Members[0])+"/member/wal", 0o700, "etcd", "etcd")
	if f := check(); f.Severity != Skip || !strings.Contains(f.Message, "has bootstrapped") {
		t.Errorf("with a WAL: %+v", f)
	}
	fs = hosttest.NewMemFS()

	svc.Members[0].Kill()
	if f := check(); f.Severity != Fail || !strings.Contains(f.Message, "does not answer from d0") {
		t.Errorf("service down: %+v", f)
	}
}
