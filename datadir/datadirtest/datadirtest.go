// Package datadirtest makes data dirs for tests: one whose backend
// records given members, as another cluster would have left it.
package datadirtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// WriteMembersDB creates the data dir root/dir whose backend records the
// members ms (name to peer URL), as another cluster would have left it.
func WriteMembersDB(t testing.TB, root, dir string, ms map[string]string) {
	t.Helper()
	WriteVersionedDB(t, root, dir, ms, "")
}

// WriteVersionedDB is WriteMembersDB with the cluster version the backend
// records ("3.4.0" as etcd 3.4 leaves it; "" for none).
func WriteVersionedDB(t testing.TB, root, dir string, ms map[string]string, clusterVersion string) {
	t.Helper()
	snap := filepath.Join(root, dir, "member", "snap")
	if err := os.MkdirAll(snap, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(snap, "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	i := 0
	err = db.Update(func(tx *bolt.Tx) error {
		if clusterVersion != "" {
			c, err := tx.CreateBucketIfNotExists([]byte("cluster"))
			if err != nil {
				return err
			}
			if err := c.Put([]byte("clusterVersion"), []byte(clusterVersion)); err != nil {
				return err
			}
		}
		b, err := tx.CreateBucketIfNotExists([]byte("members"))
		if err != nil {
			return err
		}
		for name, url := range ms {
			i++
			v := fmt.Sprintf(`{"id":%d,"peerURLs":[%q],"name":%q}`, i, url, name)
			if err := b.Put([]byte{byte(i)}, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
