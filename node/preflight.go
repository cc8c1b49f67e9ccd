package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// ErrEnvironment is wrapped by problems of the host the member cannot fix
// by restarting (a data dir it cannot write): like ErrConfig, Main exits
// with ExitConfig so that systemd stops restarting it.
var ErrEnvironment = errors.New("the host does not let etcd run")

// Preflight checks, before etcd opens anything, what would otherwise fail
// inside etcd's start-up with exit status 1 and a restart every few
// seconds forever: an initial cluster that does not parse, a data dir or
// WAL dir etcd cannot create or write. It creates the data dir (0700), as
// etcd would.
func (c *Config) Preflight() error {
	ec := c.Etcd
	if ec.InitialCluster != "" && ec.DNSCluster == "" && len(ec.DiscoveryCfg.Endpoints) == 0 {
		if _, err := types.NewURLsMap(ec.InitialCluster); err != nil {
			return fmt.Errorf("%w: ETCD_INITIAL_CLUSTER %q: %v; fix: write NAME=URL pairs separated by commas, such as etcd0=https://10.0.0.10:2380",
				ErrConfig, ec.InitialCluster, err)
		}
	}
	for _, d := range []string{ec.Dir, ec.WalDir} {
		if d == "" {
			continue
		}
		if err := writable(d); err != nil {
			return fmt.Errorf("%w: %v; fix: give the directory to the user etcd runs as (chown -R etcd:etcd %s; chmod 700 %s), "+
				"or set ETCD_DATA_DIR to one it can write", ErrEnvironment, err, d, d)
		}
	}
	return nil
}

// writable creates dir if needed and proves that a file can be created
// in it.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the data dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".etcd-preflight-*")
	if err != nil {
		return fmt.Errorf("cannot write in the data dir %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}
