package node

import (
	"errors"
	"fmt"

	humanize "github.com/dustin/go-humanize"

	"github.com/etcd-appliance/appliance/datadir"
)

// ErrOldData means the data dir was written by an etcd this one cannot
// open without changing it: etcd upgrades one minor release at a time, so
// 3.7 opens data of 3.6 and 3.7 only, and etcd 2.x data (v2 only) not at
// all.
var ErrOldData = errors.New("data dir written by an older etcd")

// Oldest release whose data this etcd opens.
const (
	oldestMajor = 3
	oldestMinor = 6
)

// GuardDataDir inspects the data dir read-only, before anything opens it,
// and refuses data an etcd of this release would modify and fail on (seen:
// etcd 3.7 on Debian's 3.4 data changed the backend and the WAL, then
// panicked, restarting forever). The data stays byte for byte as it was.
func (c *Config) GuardDataDir() error {
	dir := c.Etcd.Dir
	info, err := datadir.Inspect(dir, dir)
	if err != nil || !info.Initialized || info.Locked {
		// Unreadable or in use: etcd's own checks report it.
		return nil
	}
	if !info.V2 && !info.OlderThan(oldestMajor, oldestMinor) {
		return nil
	}
	member := "member unknown"
	if len(info.Members) == 1 {
		member = "member " + info.Members[0].Name
	} else if len(info.Members) > 1 {
		member = fmt.Sprintf("%d members", len(info.Members))
	}
	size := ""
	if info.Size > 0 {
		size = ", " + humanize.Bytes(uint64(info.Size))
	}
	fix := "migrate it with `etcd-installer migrate` (it keeps this dir as it is); docs/migration.md. " +
		"If you restored it yourself from an older release's snapshot with etcdutl, stamp it: `etcdutl migrate --data-dir " + dir + " --target-version 3.7`"
	if info.V2 {
		fix = "etcd 3.7 cannot read v2 data: convert it with etcd 3.4's `etcdctl migrate` first, as docs/migration.md explains"
	}
	return fmt.Errorf("%w: %s holds data written by %s (%s%s); etcd 3.7 opens data of 3.6 and 3.7 only, and opening it would change it; %s",
		ErrOldData, dir, info.WrittenBy(), member, size, fix)
}
