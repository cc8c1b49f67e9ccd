package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/writer"
)

// appWriter is a writer on control whose clients have every endpoint, as
// applications configure theirs: a member restarted is not an outage for
// them, so steps that restart members hold it to "no failed write" (the
// cluster suite's writer pins each client to one member instead).
type appWriter struct {
	c     *ClusterTest
	name  string
	files []string
}

// startAppWriter starts one under the unit name and returns once its first
// writes are acknowledged.
func (c *ClusterTest) startAppWriter(name string) (*appWriter, error) {
	w := &appWriter{c: c, name: name,
		files: []string{"--prefix", "e2e-" + name + "/", "--history", "/root/" + name + "-history.jsonl", "--watches", "/root/" + name + "-watch"}}
	argv := append(append([]string{"systemd-run", "--unit", name, "/usr/local/bin/e2e-writer", "--endpoints", c.endpoints(),
		"--stats", "/root/" + name + ".json", "--stop", "/root/" + name + ".stop", "--max-time", "15m", "--every-endpoint"}, w.files...), operatorTLS()...)
	_, _ = c.ctl("systemctl", "reset-failed", name)
	// A run before this one may have left its stop file and counters.
	if out, err := c.ctl("rm", "-f", "/root/"+name+".stop", "/root/"+name+".json"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	if out, err := c.ctl(argv...); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	// Under way before the fault: its first writes acknowledged.
	if err := Eventually(c.Ctx, 30*time.Second, func() error {
		if st := w.stats(); st.Acked < 10 {
			return fmt.Errorf("%s: %d writes acknowledged", name, st.Acked)
		}
		return nil
	}); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

// stats are its counters as it last wrote them.
func (w *appWriter) stats() writer.Stats {
	var st writer.Stats
	b, _ := w.c.Control.ReadFile("root/" + w.name + ".json")
	_ = json.Unmarshal(b, &st)
	return st
}

// stop stops it and returns its last counters (again: a no-op).
func (w *appWriter) stop() (writer.Stats, error) {
	if err := w.c.Control.WriteFile("root/"+w.name+".stop", nil, 0o644); err != nil {
		return writer.Stats{}, err
	}
	// The writer waits up to 60 s for its watchers to catch up before it
	// exits: more than that here, so that a slow watcher shows as the
	// checker's finding, not as a timeout.
	if err := Eventually(w.c.Ctx, 90*time.Second, func() error {
		if out, _ := w.c.ctl("systemctl", "is-active", w.name); strings.TrimSpace(out) == "active" {
			return errors.New(w.name + " still running")
		}
		return nil
	}); err != nil {
		return writer.Stats{}, err
	}
	return w.stats(), nil
}

// verify checks its history: linearizable, nothing acknowledged lost,
// every watcher saw it.
func (w *appWriter) verify(st writer.Stats) error {
	return w.c.verifyWriter(w.name, st, append([]string{"--endpoints", w.c.endpoints()}, append(w.files, operatorTLS()...)...))
}
