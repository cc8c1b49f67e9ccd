package backup_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow/backup"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// dump is every key and value under the cluster's key space, in order.
func dump(t *testing.T, cli *clientv3.Client) (map[string]string, int64) {
	t.Helper()
	r, err := cli.Get(context.Background(), "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range r.Kvs {
		out[string(kv.Key)] = string(kv.Value)
	}
	return out, r.Header.Revision
}

// The documented path for a cluster running a distribution's etcd 3.4 or
// 3.5 (docs/migration.md): back it up by its endpoints (no inventory),
// provision the appliance's cluster from an inventory, restore. Every key
// and value comes back at the old revision, under 3.7.
func TestRestoreFromDistributionCluster(t *testing.T) {
	for _, release := range []string{etcdtest.DebianPackage, etcdtest.Release35} {
		t.Run(release, func(t *testing.T) {
			ctx := context.Background()
			old := etcdtest.NewCluster(t, 3)
			old.UseBinary(etcdtest.ReleaseBinary(t, release))
			old.Start()
			for _, m := range old.Members {
				if !etcdtest.Eventually(time.Minute, 100*time.Millisecond, func() bool { return etcdtest.ClusterVersion(m.ClientURL) != "" }) {
					t.Fatalf("%s: the old cluster did not form in a minute", m.Name)
				}
			}
			cli := etcdtest.Client(t, old.Endpoints())
			for i := range 300 {
				if _, err := cli.Put(ctx, fmt.Sprintf("app/%03d", i), fmt.Sprintf("v%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			// History: overwritten and deleted keys, so that the revision
			// is not the key count.
			for i := range 50 {
				if _, err := cli.Put(ctx, fmt.Sprintf("app/%03d", i), "again"); err != nil {
					t.Fatal(err)
				}
				if _, err := cli.Delete(ctx, fmt.Sprintf("app/%03d", 299-i)); err != nil {
					t.Fatal(err)
				}
			}
			want, rev := dump(t, cli)

			inv, err := inventory.ForEndpoints(old.Endpoints())
			if err != nil {
				t.Fatal(err)
			}
			m, err := cluster.DialWith(inv.ClientURLs(), cluster.Credentials{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			file := filepath.Join(t.TempDir(), "old.db")
			info, err := backup.Save(ctx, inv, m, cluster.Credentials{}, backup.SaveOptions{Out: file}, localclustertest.Log(t))
			if err != nil {
				t.Fatal(err)
			}
			if info.Revision != rev || len(info.Members) != 3 {
				t.Errorf("backup: revision %d (cluster at %d), %d members", info.Revision, rev, len(info.Members))
			}
			cli.Close()
			for _, m := range old.Members {
				m.Signal(syscall.SIGTERM)
				m.Wait(30 * time.Second)
			}

			lc := localclustertest.Started(t, localclustertest.Inventory(t, 3, ""))
			if err := backup.Restore(ctx, lc.Inv, file, lc.Targets, backup.RestoreOptions{Dial: lc.Dial, Wait: time.Minute}, localclustertest.Log(t)); err != nil {
				t.Fatal(err)
			}
			now := etcdtest.Client(t, lc.Inv.ClientURLs())
			got, gotRev := dump(t, now)
			if fmt.Sprint(got) != fmt.Sprint(want) || gotRev != rev {
				t.Errorf("restored: %d keys at revision %d; the old cluster had %d at %d", len(got), gotRev, len(want), rev)
			}
			st, err := now.Status(ctx, lc.Inv.ClientURLs()[0])
			if err != nil || st.Version != "3.7.3" {
				t.Errorf("the restored cluster runs %v (%v)", st, err)
			}
		})
	}
}
