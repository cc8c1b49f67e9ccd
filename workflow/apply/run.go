package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

// Request is one `etcd-installer apply`.
type Request struct {
	Options
	// Sel is the hosts to apply and which of them this machine is
	// (workflow.Select): this machine alone is applied here, one line of
	// report; any other selection through Hosts, a table.
	Sel workflow.Selection
	// Root is where this machine's files are written ("/" but in tests).
	Root  string
	Hosts *workflow.Hosts
	// Certs hands each host its certificates (nil: none to hand out).
	Certs certs.Source
	// WaitReady waits until every started unit is ready, then enables
	// auth when the inventory asks for it.
	WaitReady bool
	Wait      time.Duration
}

// Report is what Run did: one outcome per host applied, in inventory
// order; Remote when they were reached from here rather than this machine
// being one of them.
type Report struct {
	Outcomes []Outcome
	Remote   bool
}

// Run applies the inventory as req says: this machine as one of its hosts,
// or every host from here over SSH. With WaitReady it waits for the units
// and then enables auth (auth = true): from here with the root password
// file, or on a host where the password may not be, with a warning.
func Run(ctx context.Context, inv *inventory.Inventory, req Request, log logrus.FieldLogger) (Report, error) {
	// A dry run starts nothing, so there is nothing to wait for.
	req.WaitReady = req.WaitReady && !req.Plan.DryRun()
	if sel := req.Sel; len(sel.Names) != 1 || sel.Names[0] != sel.This {
		if req.Root != "" && req.Root != "/" {
			return Report{}, fmt.Errorf("--root %s is where this machine's files go; %s reached over SSH", req.Root, strings.Join(sel.Names, ", "))
		}
		outs := Every(ctx, inv, req.Hosts, sel.Names, AllOptions{Options: req.Options, Extra: req.Certs, WaitReady: req.WaitReady, Wait: req.Wait}, log)
		rep := Report{Outcomes: outs, Remote: true}
		for _, o := range outs {
			if o.Err != nil {
				if req.Plan.DryRun() {
					return rep, fmt.Errorf("dry run: %d of %d hosts could not be planned (nothing was changed anywhere); fix them and run it again", failed(outs), len(outs))
				}
				return rep, fmt.Errorf("%d of %d hosts failed (the others are applied as shown); fix and re-run apply: it resumes", failed(outs), len(outs))
			}
		}
		if req.WaitReady {
			return rep, ensureAuth(ctx, inv, req.Dial, req.Plan, log)
		}
		return rep, nil
	}
	h, ok := inv.Host(req.Sel.This)
	if !ok {
		return Report{}, inv.UnknownHost("--this-host", req.Sel.This)
	}
	var err error
	o := req.Options
	if o.Extra, err = req.Certs.For(h.Name); err != nil {
		return Report{}, err
	}
	t := workflow.Local(h)
	t.FS = host.LocalFS{Root: req.Root}
	rep := Report{Outcomes: []Outcome{{Name: h.Name, Stage: "apply"}}}
	out := &rep.Outcomes[0]
	if out.Res, out.Err = Host(ctx, inv, t, o, log); out.Err != nil {
		return rep, fmt.Errorf("%s: %w", h.Name, out.Err)
	}
	if !req.WaitReady {
		return rep, nil
	}
	out.Stage = "ready"
	if out.Took, out.Err = workflow.WaitReady(ctx, t, req.Wait, log); out.Err != nil {
		return rep, out.Err
	}
	if err := ensureAuth(ctx, inv, req.Dial, req.Plan, log); errors.Is(err, cluster.ErrNoPassword) {
		// Per-host applies run where the password may not be: the
		// operator enables auth from their machine.
		log.Warn("auth not enabled yet: " + err.Error())
	} else if err != nil {
		return rep, err
	}
	return rep, nil
}

func failed(outs []Outcome) int {
	n := 0
	for _, o := range outs {
		if o.Err != nil {
			n++
		}
	}
	return n
}

// ensureAuth enables auth once the cluster serves, when the inventory
// asks for it.
func ensureAuth(ctx context.Context, inv *inventory.Inventory, dial cluster.Dialer, plan *workflow.Plan, log logrus.FieldLogger) error {
	if !inv.Cluster.Auth {
		return nil
	}
	return plan.Do("", "enable auth unless it is on (users root and reader, role readonly)", func() error {
		m, err := dial(inv.ClientURLs())
		if err != nil {
			return err
		}
		defer m.Close()
		return cluster.EnsureAuth(ctx, inv, m, log)
	})
}
