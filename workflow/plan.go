package workflow

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// Plan records what a workflow does or, in a dry run, would do: one Action
// per change, in order. Its Do method is the one dry-run guard: every
// change to a host, to the cluster or to a file on this machine goes
// through it, so a dry run runs the same steps as a real one and changes
// nothing. A nil *Plan makes every change without recording it.
type Plan struct {
	dryRun bool
	log    logrus.FieldLogger

	mu      sync.Mutex
	actions []Action
}

// Action is one change of a workflow.
type Action struct {
	// Host is the inventory host changed; "" for the cluster itself or
	// this machine.
	Host string
	// What says the change in a few words: "write /etc/etcd/etcd.conf".
	What string
	// Detail, when set, shows the change (a file's diff).
	Detail string
}

// NewPlan returns a plan that makes changes, or with dryRun only records
// them (and logs each at info level).
func NewPlan(dryRun bool, log logrus.FieldLogger) *Plan {
	return &Plan{dryRun: dryRun, log: log}
}

// DryRun reports whether changes are only recorded.
func (p *Plan) DryRun() bool { return p != nil && p.dryRun }

// Do records the change what on host and, unless this is a dry run, makes
// it by calling f.
func (p *Plan) Do(host, what string, f func() error) error {
	return p.DoDetail(host, what, "", f)
}

// DoDetail is Do with a detail that shows the change.
func (p *Plan) DoDetail(host, what, detail string, f func() error) error {
	if p == nil {
		return f()
	}
	p.mu.Lock()
	p.actions = append(p.actions, Action{Host: host, What: what, Detail: detail})
	p.mu.Unlock()
	if p.dryRun {
		if p.log != nil {
			log := p.log
			if host != "" {
				log = log.WithField("host", host)
			}
			log.Info("dry run: would " + what)
		}
		return nil
	}
	return f()
}

// Actions returns the changes recorded so far, in order.
func (p *Plan) Actions() []Action {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Action(nil), p.actions...)
}

// For returns the changes recorded for one host.
func (p *Plan) For(host string) []Action {
	var out []Action
	for _, a := range p.Actions() {
		if a.Host == host {
			out = append(out, a)
		}
	}
	return out
}

// Print writes the changes grouped by host, hosts in order of their first
// change: what a dry run would have done, or what a run did.
func (p *Plan) Print(w io.Writer) error {
	acts := p.Actions()
	verb := "did"
	if p.DryRun() {
		verb = "would do (dry run: nothing was changed)"
	}
	if len(acts) == 0 {
		what := "nothing to do"
		if p.DryRun() {
			what += " (dry run)"
		}
		_, err := fmt.Fprintln(w, what)
		return err
	}
	var order []string
	byHost := map[string][]Action{}
	for _, a := range acts {
		if _, ok := byHost[a.Host]; !ok {
			order = append(order, a.Host)
		}
		byHost[a.Host] = append(byHost[a.Host], a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n", verb)
	for _, h := range order {
		label := h
		if label == "" {
			label = "(cluster and this machine)"
		}
		fmt.Fprintf(&b, "%s:\n", label)
		for _, a := range byHost[h] {
			fmt.Fprintf(&b, "  %s\n", a.What)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
