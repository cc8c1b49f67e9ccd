// Package localcluster runs every member and proxy of a loopback
// inventory on this machine as child processes (`etcd-installer run`),
// through the same apply workflow as real hosts: each host has its own
// file tree and a notify socket standing in for systemd.
package localcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/apply"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

// ErrNotLoopback means an inventory's hosts are not all on this machine.
var ErrNotLoopback = errors.New("inventory is not a loopback inventory")

// Cluster runs every member and proxy of a loopback inventory on this
// machine as child processes, through the same Apply as real hosts: each
// host has its own file tree under Root/hosts/NAME and its data under
// Root/data/NAME.
type Cluster struct {
	Inv     *inventory.Inventory
	Targets []workflow.Target
	// Certs is the certificate directory when TLS is on.
	Certs   string
	procs   map[string]*host.Processes
	sockDir string
	log     logrus.FieldLogger
	out     io.Writer
	// exits are the children's exits, for Supervise.
	exits chan exit
	// quiet: the whole cluster is being stopped; children's chatter about
	// it is not shown.
	quiet atomic.Bool
}

// Palette colours each host's log prefix on a terminal.
var palette = []string{"\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m", "\x1b[96m", "\x1b[93m", "\x1b[92m"}

// New prepares (does not start) a local cluster. Output gets
// every child's lines prefixed with its host name, coloured when color.
func New(inv *inventory.Inventory, root, etcd string, out io.Writer, color bool, log logrus.FieldLogger) (*Cluster, error) {
	if !inv.Loopback() {
		return nil, fmt.Errorf("%w: run starts every host on this machine, so every member and proxy address must be loopback (127.0.0.1, ::1 or localhost); "+
			"use `etcd-installer apply` for real hosts", ErrNotLoopback)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	c := *inv
	c.Cluster.DataDir = filepath.Join(root, "data")
	if out == nil {
		out = io.Discard
	}
	lc := &Cluster{Inv: &c, procs: map[string]*host.Processes{}, log: log, out: out, exits: make(chan exit, 64)}
	if c.TLSEnabled() {
		lc.Certs = filepath.Join(root, "certs")
		if _, err := certs.Ensure(lc.Certs, &c, time.Now(), false, nil); err != nil {
			return nil, err
		}
	}
	// Socket paths are limited to 108 bytes: keep them out of root.
	lc.sockDir, err = os.MkdirTemp("", "etcd-run-")
	if err != nil {
		return nil, err
	}
	width := 0
	for _, h := range c.Hosts() {
		width = max(width, len(h.Name))
	}
	var mu sync.Mutex
	for i, h := range c.Hosts() {
		prefix := fmt.Sprintf("%-*s | ", width, h.Name)
		if color {
			prefix = palette[i%len(palette)] + prefix + "\x1b[0m"
		}
		fsys := host.LocalFS{Root: filepath.Join(root, "hosts", h.Name), Outside: []string{c.Cluster.DataDir}, IgnoreOwner: true}
		if err := os.MkdirAll(fsys.Root, 0o755); err != nil {
			return nil, err
		}
		sock := filepath.Join(lc.sockDir, fmt.Sprint(i))
		if err := os.MkdirAll(sock, 0o700); err != nil {
			return nil, err
		}
		name := h.Name
		p := &host.Processes{FS: fsys, Etcd: etcd, Dir: sock, Output: func(_, line string) {
			if lc.quiet.Load() && quietWhileStopping(line) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintln(out, prefix+line)
		}, Exited: func(e host.Exit) {
			// Nobody supervising (tests, a stop): the exit is not waited for.
			select {
			case lc.exits <- exit{Exit: e, host: name}:
			default:
			}
		}}
		lc.procs[h.Name] = p
		lc.Targets = append(lc.Targets, workflow.Target{Host: h, FS: fsys, Services: p, Runner: host.LocalRunner{},
			Etcdutl: filepath.Join(filepath.Dir(etcd), "etcdutl"), NoChown: true})
	}
	return lc, nil
}

// Target returns the named host.
func (lc *Cluster) Target(name string) (workflow.Target, bool) {
	for _, t := range lc.Targets {
		if t.Host.Name == name {
			return t, true
		}
	}
	return workflow.Target{}, false
}

// Processes returns the process manager of the named host, for tests that
// crash members.
func (lc *Cluster) Processes(name string) *host.Processes { return lc.procs[name] }

// Dial connects to the local cluster, as the operator when TLS is on.
func (lc *Cluster) Dial(endpoints []string) (cluster.Membership, error) {
	tc, err := lc.ClientTLS()
	if err != nil {
		return nil, err
	}
	return cluster.Dial(endpoints, tc)
}

// ClientTLS is the operator's TLS configuration (nil without TLS).
func (lc *Cluster) ClientTLS() (*tls.Config, error) {
	if lc.Certs == "" {
		return nil, nil
	}
	ca, cert, key := pki.OperatorFiles(lc.Certs)
	return cluster.ClientTLS(lc.Inv, ca, cert, key)
}

// Start applies every host (members start together, as a new cluster
// needs) and waits until all are ready.
func (lc *Cluster) Start(ctx context.Context, wait time.Duration) error {
	lc.quiet.Store(false)
	for _, t := range lc.Targets {
		o := apply.Options{Dial: lc.Dial}
		if lc.Certs != "" {
			files, err := certs.HostFiles(lc.Certs, lc.Inv, t.Host.Name)
			if err != nil {
				return err
			}
			o.Extra = files
		}
		if _, err := apply.Host(ctx, lc.Inv, t, o, lc.log); err != nil {
			return fmt.Errorf("%s: %w", t.Host.Name, err)
		}
	}
	return lc.WaitReady(ctx, wait)
}

// WaitReady waits for every host's unit, in parallel.
func (lc *Cluster) WaitReady(ctx context.Context, wait time.Duration) error {
	errs := make([]error, len(lc.Targets))
	var wg sync.WaitGroup
	for i, t := range lc.Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = workflow.WaitReady(ctx, t, wait, lc.log)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close removes what the local cluster keeps outside its root.
func (lc *Cluster) Close() error { return os.RemoveAll(lc.sockDir) }

// Stop stops proxies first, then members in reverse order, each
// gracefully, with a line each ("infra3 stopped (0.5s)"); what the
// children say about the others going away is not shown (errors are).
// Start starts them again from their data.
func (lc *Cluster) Stop(ctx context.Context) error {
	lc.quiet.Store(true)
	var errs []error
	for i := len(lc.Targets) - 1; i >= 0; i-- {
		t := lc.Targets[i]
		st, _ := t.Services.State(ctx, t.Unit())
		if st.Active != "active" && st.Active != "activating" {
			continue
		}
		start := time.Now()
		if err := t.Services.Stop(ctx, t.Unit()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Host.Name, err))
			continue
		}
		fmt.Fprintf(lc.out, "%s stopped (%s)\n", t.Host.Name, time.Since(start).Round(10*time.Millisecond))
	}
	return errors.Join(errs...)
}
