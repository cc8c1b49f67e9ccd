package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/workflow"
)

// Why supervision ends.
var (
	// ErrKeepsFailing means a member failed too often in a short time.
	ErrKeepsFailing = errors.New("keeps failing")
	// ErrAllStopped means no member or proxy runs any more.
	ErrAllStopped = errors.New("every member has stopped")
)

// preventRestart are the exit codes etcd.service lists in
// RestartPreventExitStatus (units/etcd.service), with what they mean.
var preventRestart = map[int]string{
	78: "invalid configuration",
	79: "removed from the cluster",
	80: "data of an etcd too old to open (etcd-installer migrate)",
	81: "lost its data: an empty data dir for a member the cluster has (etcd-installer member replace)",
}

// SuperviseOptions tune Supervise; zero values are run's defaults.
type SuperviseOptions struct {
	// Out receives what happens, a line each.
	Out io.Writer
	// Health is how often the cluster's health is checked (2 s).
	Health time.Duration
	// Backoff is the wait before the nth restart of a host (1 s, doubling
	// to 30 s).
	Backoff func(n int) time.Duration
	// Burst failures of one host within Window end supervision (5 in 2
	// minutes, as systemd's start limit would stop restarting a unit).
	Burst  int
	Window time.Duration
}

func (o *SuperviseOptions) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Health == 0 {
		o.Health = 2 * time.Second
	}
	if o.Backoff == nil {
		o.Backoff = func(n int) time.Duration { return min(time.Second<<min(n-1, 5), 30*time.Second) }
	}
	if o.Burst == 0 {
		o.Burst = 5
	}
	if o.Window == 0 {
		o.Window = 2 * time.Minute
	}
}

// Supervise keeps the started cluster running, like systemd's
// Restart=on-failure on real hosts but with a back-off, until ctx ends
// (nil) or it cannot (an error saying why): a member or proxy that exits
// is reported at once (how, after how long, and for an exit it chose its
// last lines); one that failed is restarted after a back-off; one that
// exited cleanly (stopped from outside) or with a code the unit's
// RestartPreventExitStatus lists (removed from the cluster, say) is not,
// and the others run on; Burst failures of one within Window, or nothing
// left running, end it. It prints the cluster's health when it changes.
func (lc *Cluster) Supervise(ctx context.Context, o SuperviseOptions) error {
	o.defaults()
	say := func(format string, args ...any) { fmt.Fprintf(o.Out, "run: "+format+"\n", args...) }
	failures := map[string][]time.Time{}
	pending := map[string]bool{}
	restart := make(chan string, len(lc.Targets))
	// A restarted member says when it serves again (READY), as
	// `systemctl start` returns only then.
	serving := make(chan string, len(lc.Targets))
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	var timers []*time.Timer
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	m, err := lc.Dial(lc.Inv.ClientURLs())
	if err != nil {
		return err
	}
	defer m.Close()
	// Supervision starts from a cluster that was ready (run printed its
	// table): say only when health changes, leader moves aside.
	last := fmt.Sprintf("true %d []", len(lc.Inv.Members))
	health := time.NewTicker(o.Health)
	defer health.Stop()
	// A check runs beside the loop (a slow member must not delay the
	// report of an exit), one at a time.
	statuses := make(chan cluster.ClusterStatus, 1)
	checking := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-lc.exits:
			if ev.Requested {
				continue
			}
			name := ev.host
			say("%s %s after %s", name, ev.Describe(), ev.Ran.Round(time.Second/10))
			// What a member said last explains an exit it chose; a signal
			// from outside has nothing to do with it.
			if ev.Signal == 0 && ev.Code != 0 {
				say("%s's last lines:", name)
				for _, l := range lastLines(ev.Tail, 5) {
					fmt.Fprintf(o.Out, "    %s\n", l)
				}
			}
			if why, ok := preventRestart[ev.Code]; ok && ev.Signal == 0 {
				// As RestartPreventExitStatus does: this one stays down,
				// the others keep running.
				say("%s is not restarted: %s, which restarting does not fix", name, why)
			} else if ev.Clean() {
				say("%s stopped cleanly, not by run: not restarted (as Restart=on-failure would not)", name)
			} else {
				now := time.Now()
				recent := append(slices.DeleteFunc(failures[name], func(t time.Time) bool { return now.Sub(t) > o.Window }), now)
				failures[name] = recent
				if len(recent) >= o.Burst {
					return fmt.Errorf("%s %w: it failed %d times within %s, the last time %s", name, ErrKeepsFailing, len(recent), span(o.Window), ev.Describe())
				}
				wait := o.Backoff(len(recent))
				say("restarting %s in %s (run gives up after %d failures of a member within %s)", name, wait, o.Burst, span(o.Window))
				pending[name] = true
				timers = append(timers, time.AfterFunc(wait, func() {
					select {
					case restart <- name:
					case <-ctx.Done():
					}
				}))
			}
			if !lc.anyRunning(ctx) && len(pending) == 0 {
				return ErrAllStopped
			}
		case name := <-restart:
			delete(pending, name)
			if ctx.Err() != nil {
				return nil // Ctrl-C won the race: no restart
			}
			t, _ := lc.Target(name)
			if err := t.Services.Start(ctx, t.Unit()); err != nil {
				return fmt.Errorf("restarting %s: %w", name, err)
			}
			say("%s restarted", name)
			go func() {
				took, err := workflow.WaitReady(ctx, t, 10*time.Minute, quiet)
				if err != nil {
					return // its exit, or the stop, is reported as such
				}
				select {
				case serving <- fmt.Sprintf("%s serving again (ready %s after its restart)", name, took.Round(time.Second/10)):
				case <-ctx.Done():
				}
			}()
		case line := <-serving:
			say("%s", line)
		case <-health.C:
			if checking {
				continue
			}
			checking = true
			go func() { statuses <- cluster.Status(ctx, lc.Inv, m) }()
		case cs := <-statuses:
			checking = false
			if ctx.Err() != nil {
				return nil
			}
			if k := healthKey(cs); k != last {
				say("%s", summary(cs))
				last = k
			}
		}
	}
}

// exit is a host's exit, as Supervise hears of it.
type exit struct {
	host.Exit
	host string
}

func (lc *Cluster) anyRunning(ctx context.Context) bool {
	for _, t := range lc.Targets {
		if st, err := t.Services.State(ctx, t.Unit()); err == nil && (st.Active == "active" || st.Active == "activating") {
			return true
		}
	}
	return false
}

// healthKey is what a change of health changes: whether the cluster is
// healthy, how many members are, and which are not.
func healthKey(cs cluster.ClusterStatus) string {
	var down []string
	for _, r := range cs.Rows {
		if !r.Healthy {
			down = append(down, r.Name)
		}
	}
	return fmt.Sprintf("%v %d %v", cs.Healthy, len(cs.Rows)-len(down), down)
}

// summary is the cluster's health in one line.
func summary(cs cluster.ClusterStatus) string {
	healthy, leader := 0, ""
	var down []string
	for _, r := range cs.Rows {
		if r.Healthy {
			healthy++
		} else {
			down = append(down, r.Name)
		}
		if r.Leader {
			leader = r.Name
		}
	}
	s := fmt.Sprintf("%d of %d members healthy", healthy, len(cs.Rows))
	if leader != "" && healthy > 0 {
		s += ", leader " + leader
	}
	if len(down) > 0 {
		s += "; not serving: " + strings.Join(down, ", ")
	}
	if cs.Healthy {
		return "cluster healthy: " + s
	}
	return "cluster not healthy: " + s
}

// span is a window for people: "2 minutes", "30s".
func span(d time.Duration) string {
	if d >= time.Minute && d%time.Minute == 0 {
		if d == time.Minute {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", d/time.Minute)
	}
	return d.String()
}

func lastLines(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}

// quietWhileStopping reports whether a child's line is noise once the
// whole cluster is being stopped: anything below warn level, and the
// warnings about peers going away (every peer is). Errors always show.
func quietWhileStopping(line string) bool {
	var l struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}
	if json.Unmarshal([]byte(line), &l) != nil {
		return false
	}
	switch l.Level {
	case "debug", "info":
		return true
	case "warn":
		return peerNoise[l.Msg]
	}
	return false
}

// peerNoise are etcd's warnings about peers that are no longer there.
var peerNoise = map[string]bool{
	"lost TCP streaming connection with remote peer":         true,
	"closed TCP streaming connection with remote peer":       true,
	"peer became inactive (message send to peer failed)":     true,
	"failed to find remote peer in cluster":                  true,
	"failed to reach the peer URL":                           true,
	"failed to get version":                                  true,
	"prober detected unhealthy status":                       true,
	"leadership transfer failed":                             true,
	"failed to publish local member to cluster through raft": true,
}
