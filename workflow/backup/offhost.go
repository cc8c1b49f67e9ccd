package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/host"
)

// ErrCopy means the off-host copy failed: the backup itself is good and
// stays the last good one here, but the unit fails so that it is seen.
var ErrCopy = errors.New("the off-host copy failed")

// Copy is where verified backups are copied off the host.
type Copy struct {
	// To names the host for messages; Dial reaches it (at the copy, so
	// that a copy host that is down costs the copy, not the backup): its
	// runner runs commands there as the login user.
	To   string
	Dial func() (host.Runner, func() error, error)
	// Dir holds the copies there (created 0700).
	Dir string
}

// Bounds of each command on the copy host: a host that stops answering
// fails the copy instead of holding the unit until its own timeout.
const (
	sendTimeout  = 30 * time.Minute // and 1 s per MiB beyond 1.8 GiB
	slowestLink  = 1 << 20          // bytes per second a send may take
	checkTimeout = 5 * time.Minute
	cmdTimeout   = time.Minute
)

// copyOffHost copies a verified backup and its metadata into c.Dir on the
// copy host: both files are written under dot-names and their SHA-256
// checked there, then renamed into place, the metadata first, so that a
// backup's name there means the whole copy is. A failed send removes its
// dot-name. Then the retention (the same as here) over that dir's copies
// of this cluster: named CLUSTER-TIME.db and with this cluster's token in
// their metadata (another cluster of the same name may share the dir);
// other files are never touched. Only commands every Linux host has are
// used (mkdir, dd, sha256sum, mv, ls, cat, rm), each an argv.
func copyOffHost(ctx context.Context, c Copy, file, cluster, token string, keepLast, keepDaily int, now time.Time, log logrus.FieldLogger) (deleted []string, err error) {
	r, closeRunner, err := c.Dial()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCopy, c.To, err)
	}
	defer closeRunner()
	run := func(timeout time.Duration, stdin *os.File, argv ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var out []byte
		var err error
		if stdin != nil {
			out, err = r.Run(cctx, stdin, argv...)
		} else {
			out, err = r.Run(cctx, nil, argv...)
		}
		return string(out), err
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("%w: %s on %s: %w", ErrCopy, what, c.To, err)
	}
	if _, err := run(cmdTimeout, nil, "mkdir", "-p", "-m", "0700", "--", c.Dir); err != nil {
		return nil, fail("creating "+c.Dir, err)
	}
	var staged []string
	defer func() {
		if err != nil && len(staged) > 0 {
			// Best effort, bounded even when ctx is done.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmdTimeout)
			defer cancel()
			_, _ = r.Run(rctx, nil, append([]string{"rm", "-f", "--"}, staged...)...)
		}
	}()
	files := []string{file + ".json", file}
	for _, p := range files {
		sum, _, err := fileSHA256(p)
		if err != nil {
			return nil, err
		}
		tmp := path.Join(c.Dir, "."+filepath.Base(p)+".partial")
		staged = append(staged, tmp)
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		send := sendTimeout
		if fi, err := f.Stat(); err == nil && time.Duration(fi.Size()/slowestLink)*time.Second > send {
			send = time.Duration(fi.Size()/slowestLink) * time.Second
		}
		_, err = run(send, f, "dd", "of="+tmp, "bs=1M", "status=none", "conv=fsync")
		f.Close()
		if err != nil {
			return nil, fail("writing "+tmp, err)
		}
		out, err := run(checkTimeout, nil, "sha256sum", "--", tmp)
		if err != nil {
			return nil, fail("checking "+tmp, err)
		}
		if f := strings.Fields(out); len(f) == 0 || f[0] != sum {
			return nil, fmt.Errorf("%w: %s:%s has sha256 %q, the backup %s (removed there; the next backup tries again)", ErrCopy, c.To, tmp, strings.TrimSpace(out), sum)
		}
	}
	for i, p := range files {
		dst := path.Join(c.Dir, filepath.Base(p))
		if _, err := run(cmdTimeout, nil, "mv", "-f", "--", staged[i], dst); err != nil {
			if i > 0 {
				// The .json is in place, its .db is not: the retention
				// only sees .db names, so the cleanup takes it.
				staged = append(staged, path.Join(c.Dir, filepath.Base(files[0])))
			}
			return nil, fail("renaming "+staged[i], err)
		}
	}
	staged = nil
	log.WithFields(logrus.Fields{"to": c.To + ":" + path.Join(c.Dir, filepath.Base(file))}).Info("copied off the host, its sha256 checked there")
	out, err := run(cmdTimeout, nil, "ls", "-1", "--", c.Dir)
	if err != nil {
		return nil, fail("listing "+c.Dir, err)
	}
	taken := map[string]time.Time{}
	for _, name := range strings.Split(out, "\n") {
		t, ok := timeOf(name, cluster)
		if !ok || name == filepath.Base(file) {
			continue
		}
		meta, err := run(cmdTimeout, nil, "cat", "--", path.Join(c.Dir, name+".json"))
		var info Info
		if err != nil || json.Unmarshal([]byte(meta), &info) != nil || info.Token != token {
			log.WithField("file", c.To+":"+path.Join(c.Dir, name)).Debug("not this cluster's copy (another cluster of the same name, or no metadata): the retention leaves it alone")
			continue
		}
		if t.After(now) {
			t = now
		}
		taken[name] = t
	}
	taken[filepath.Base(file)] = now
	for _, name := range Retain(taken, keepLast, keepDaily) {
		if name == filepath.Base(file) {
			continue
		}
		if _, err := run(cmdTimeout, nil, "rm", "-f", "--", path.Join(c.Dir, name), path.Join(c.Dir, name+".json")); err != nil {
			return deleted, fail("retention", err)
		}
		deleted = append(deleted, name)
		log.WithField("file", c.To+":"+path.Join(c.Dir, name)).Info("copy deleted by the retention")
	}
	return deleted, nil
}

// timeOf reads the time in a scheduled backup's name,
// CLUSTER-YYYYMMDDTHHMMSSZ.db.
func timeOf(name, cluster string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, cluster+"-")
	if !ok {
		return time.Time{}, false
	}
	stamp, ok := strings.CutSuffix(rest, ".db")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T150405Z", stamp)
	return t, err == nil
}
