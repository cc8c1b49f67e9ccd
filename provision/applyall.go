package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/installer"
)

// ErrRollingStopped marks hosts a rolling restart left alone because an
// earlier host failed.
var ErrRollingStopped = errors.New("not applied: the rolling restart stopped at an earlier host")

// HostOutcome is what ApplyAll did on one host.
type HostOutcome struct {
	Name string
	Res  ApplyResult
	// Took is how long the host took to become ready (when waited for).
	Took time.Duration
	Err  error
	// Stage is where it failed: apply or ready.
	Stage string
	// Rolling is true when the host restarted in the rolling phase.
	Rolling bool
}

// ApplyAllOptions tune ApplyAll.
type ApplyAllOptions struct {
	ApplyOptions
	// Extra returns the host's extra files (its certificates); nil for
	// none.
	Extra func(host string) ([]installer.File, error)
	// WaitReady waits for every started host. Hosts restarted one at a
	// time are always waited for: the next restart needs them serving.
	WaitReady bool
	Wait      time.Duration
}

// ApplyAll applies every target. Hosts whose running member must restart
// go one at a time, each ready before the next, followers first and the
// leader last: restarting them together, each seeing a healthy cluster
// when it checked, would stop the cluster. The other hosts are applied in
// parallel and started together, as a new cluster's members must be. One
// failing host does not stop the parallel ones; it ends the rolling
// restart, leaving the hosts after it as they were for a re-run.
func ApplyAll(ctx context.Context, inv *installer.Inventory, targets []Target, o ApplyAllOptions, log logrus.FieldLogger) []HostOutcome {
	out := make([]HostOutcome, len(targets))
	opts := make([]ApplyOptions, len(targets))
	for i, t := range targets {
		out[i] = HostOutcome{Name: t.Host.Name, Stage: "apply"}
		opts[i] = o.ApplyOptions
	}
	_ = onEvery(targets, func(i int, t Target) error {
		if o.Extra != nil {
			opts[i].Extra, out[i].Err = o.Extra(t.Host.Name)
		}
		return out[i].Err
	})

	rolling := make([]bool, len(targets))
	if !o.DryRun {
		// The plan decides, read-only, which hosts would restart.
		quiet := logrus.New()
		quiet.SetOutput(io.Discard)
		_ = onEvery(targets, func(i int, t Target) error {
			if out[i].Err != nil {
				return nil
			}
			po := opts[i]
			po.DryRun = true
			res, err := Apply(ctx, inv, t, po, quiet)
			if err != nil {
				out[i].Err = err
				return err
			}
			rolling[i] = res.Restarted
			return nil
		})
	}

	_ = onEvery(targets, func(i int, t Target) error {
		if out[i].Err != nil || rolling[i] {
			return nil
		}
		out[i].Res, out[i].Err = Apply(ctx, inv, t, opts[i], log)
		return out[i].Err
	})
	if o.WaitReady {
		_ = onEvery(targets, func(i int, t Target) error {
			if out[i].Err != nil || rolling[i] {
				return nil
			}
			out[i].Stage = "ready"
			out[i].Took, out[i].Err = WaitReady(ctx, t, o.Wait, log)
			return out[i].Err
		})
	}

	var stopped string
	for _, i := range restartOrder(ctx, inv, targets, rolling, o.Dial) {
		t := targets[i]
		out[i].Rolling = true
		if stopped != "" {
			out[i].Err = fmt.Errorf("%w (%s)", ErrRollingStopped, stopped)
			continue
		}
		log.WithField("host", t.Host.Name).Info("rolling restart: this member now, the next once it serves")
		out[i].Res, out[i].Err = Apply(ctx, inv, t, opts[i], log)
		if out[i].Err == nil {
			out[i].Stage = "ready"
			out[i].Took, out[i].Err = WaitReady(ctx, t, o.Wait, log)
		}
		if out[i].Err != nil {
			stopped = t.Host.Name
		}
	}
	return out
}

// restartOrder lists the rolling hosts with the leader last, so the
// cluster elects a new leader once rather than at every step. Without an
// answer from the cluster it keeps the inventory's order.
func restartOrder(ctx context.Context, inv *installer.Inventory, targets []Target, rolling []bool, dial func([]string) (Membership, error)) []int {
	var order []int
	for i := range targets {
		if rolling[i] {
			order = append(order, i)
		}
	}
	if len(order) < 2 || dial == nil {
		return order
	}
	leader := leaderName(ctx, inv, dial)
	for k, i := range order {
		if targets[i].Host.Name == leader {
			return append(append(append([]int(nil), order[:k]...), order[k+1:]...), i)
		}
	}
	return order
}

// leaderName is the leader's member name, or "" when no member says.
func leaderName(ctx context.Context, inv *installer.Inventory, dial func([]string) (Membership, error)) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := dial(inv.ClientURLs())
	if err != nil {
		return ""
	}
	defer m.Close()
	members, err := m.Members(ctx)
	if err != nil {
		return ""
	}
	for _, ep := range inv.ClientURLs() {
		st := m.Status(ctx, ep)
		if st.Err != nil || st.Leader == 0 {
			continue
		}
		for _, mm := range members {
			if mm.ID == st.Leader {
				return mm.Name
			}
		}
	}
	return ""
}
