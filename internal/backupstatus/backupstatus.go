// Package backupstatus is the record of a member's last good scheduled
// backup: etcd-backup.service writes it after a backup verified, and the
// server reads it at every scrape to export it as metrics (so an alert
// can fire when backups stop). It imports nothing of the appliance but
// the atomic write, so that the server can use it.
package backupstatus

import (
	"encoding/json"
	"os"
	"time"

	"github.com/etcd-appliance/appliance/internal/atomicfile"
)

// Status is the last good backup.
type Status struct {
	File     string    `json:"file"`
	TakenAt  time.Time `json:"takenAt"`
	Verified time.Time `json:"verified"`
	Revision int64     `json:"revision"`
	Size     int64     `json:"size"`
}

// Read reads a status file.
func Read(p string) (Status, error) {
	var st Status
	b, err := os.ReadFile(p)
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// Write replaces the status file atomically (0600, owned by uid:gid; -1
// keeps the writer's).
func Write(p string, st Status, uid, gid int) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	_, err = atomicfile.Write(p, append(b, '\n'), atomicfile.Options{Mode: 0o600, UID: uid, GID: gid})
	return err
}
