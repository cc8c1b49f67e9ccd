package installer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	inv "github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/provision"
)

func newApplyCmd(e *env) *cobra.Command {
	var (
		cf                             clientFlags
		hs                             hosts
		host, root                     string
		dryRun, noStart, force, noWait bool
		wait                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply INVENTORY [--host NAME]",
		Short: "Make this host what the inventory says: files, unit, start; idempotent",
		Long: "apply renders this host's files, writes those that changed (atomically, with owner and mode),\n" +
			"reloads systemd if a unit changed, enables and starts the unit without blocking, and waits until\n" +
			"it is ready. A running member whose configuration changed is restarted only when the rest of\n" +
			"the cluster keeps quorum. A second run changes nothing.\n\n" + hostSelection + "\n\n" +
			"On a machine that is none of the hosts, when every host has an ssh target, apply provisions\n" +
			"them all over SSH in parallel, starts every unit together and waits for all of them; running\n" +
			"members whose configuration changed restart one at a time, the leader last, each serving\n" +
			"before the next.\n\n" +
			"With TLS on and a certificate directory (--certs, default certs/ beside the inventory, made\n" +
			"by `etcd-installer certs`), each host gets its own certificates and keys; the CA key stays.\n" +
			"With auth = true, once the cluster serves apply creates the root user (password from\n" +
			"root_password_file), a read-only role and user, and enables auth.",
		Example: `  etcd-installer apply prod.toml --dry-run
  etcd-installer apply prod.toml --host etcd1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			opts := provision.ApplyOptions{DryRun: dryRun, NoStart: noStart, ForceRestart: force, Dial: cf.dialer(i)}
			certs, err := hostCerts(i, cf.certs)
			if err != nil {
				return err
			}
			waitReady := !dryRun && !noStart && !noWait
			if host == "" {
				if _, err := identify(i, ""); err != nil {
					if !allHaveSSH(i) {
						return fmt.Errorf("%w; or give every host an ssh target to provision them all from here", err)
					}
					if err := applyRemote(cmd.Context(), e, i, &hs, opts, certs, waitReady, wait); err != nil {
						return err
					}
					if waitReady {
						return ensureAuth(cmd.Context(), e, i, &cf)
					}
					return nil
				}
			}
			h, err := identify(i, host)
			if err != nil {
				return err
			}
			if certs != nil {
				if opts.Extra, err = certs(h.Name); err != nil {
					return err
				}
			}
			t := localTarget(h)
			t.FS = provision.LocalFS{Root: root}
			res, err := provision.Apply(cmd.Context(), i, t, opts, e.log)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if waitReady {
				took, err := provision.WaitReady(cmd.Context(), t, wait, e.log)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s: %s; ready (%s)\n", h.Name, res.Summary(), took.Round(10*time.Millisecond))
				if err := ensureAuth(cmd.Context(), e, i, &cf); errors.Is(err, provision.ErrNoPassword) {
					// Per-host applies run where the password may not be:
					// the operator enables auth from their machine.
					e.log.Warn("auth not enabled yet: " + err.Error())
				} else if err != nil {
					return err
				}
				return nil
			}
			prefix := ""
			if dryRun {
				prefix = "dry run, would have: "
			}
			fmt.Fprintf(e.stdout, "%s: %s%s\n", h.Name, prefix, res.Summary())
			return nil
		},
	}
	hs.ssh.add(cmd)
	cf.add(cmd)
	cmd.Flags().StringVar(&host, "host", "", "the inventory host this machine is")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "write files and enable the unit, but do not start it")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "start without waiting until the member is ready (members restarted one at a time are always waited for)")
	cmd.Flags().BoolVar(&force, "force-restart", false, "restart a changed member even if the cluster may lose quorum")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for the member to become ready")
	cmd.Flags().StringVar(&root, "root", "/", "write under this directory instead of / (for testing)")
	return cmd
}

func allHaveSSH(i *inv.Inventory) bool {
	for _, h := range i.Hosts() {
		if h.SSH == "" {
			return false
		}
	}
	return len(i.Hosts()) > 0
}

// applyRemote provisions every host over SSH: provision.ApplyAll starts
// new members together and restarts changed running members one at a
// time. It prints a summary. A failing host does not stop the parallel
// ones; the summary says which hosts are done, and a re-run resumes.
func applyRemote(ctx context.Context, e *env, i *inv.Inventory, hs *hosts, opts provision.ApplyOptions,
	certs func(string) ([]inv.File, error), waitReady bool, wait time.Duration) error {
	defer hs.close()
	var names []string
	for _, h := range i.Hosts() {
		names = append(names, h.Name)
	}
	var mu sync.Mutex
	connErr := map[string]error{}
	conn := map[string]provision.Target{}
	_ = each(names, func(name string) error {
		t, err := hs.target(i, name)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			connErr[name] = err
			return err
		}
		conn[name] = t
		return nil
	})
	var targets []provision.Target
	for _, name := range names {
		if t, ok := conn[name]; ok {
			targets = append(targets, t)
		}
	}
	outcomes := map[string]provision.HostOutcome{}
	for _, o := range provision.ApplyAll(ctx, i, targets, provision.ApplyAllOptions{ApplyOptions: opts, Extra: certs, WaitReady: waitReady, Wait: wait}, e.log) {
		outcomes[o.Name] = o
	}
	for name, err := range connErr {
		outcomes[name] = provision.HostOutcome{Name: name, Err: err, Stage: "connect"}
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tRESULT\tREADY")
	failed := 0
	for _, name := range names {
		o := outcomes[name]
		ready := "-"
		switch {
		case o.Err != nil:
			failed++
			ready = "FAILED at " + o.Stage + ": " + firstLineOf(o.Err.Error())
		case waitReady || o.Rolling:
			ready = o.Took.Round(10 * time.Millisecond).String()
		}
		summary := o.Res.Summary()
		if o.Rolling && o.Err == nil {
			summary += " (rolling)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, summary, ready)
	}
	tw.Flush()
	if failed > 0 {
		for _, name := range names {
			if o := outcomes[name]; o.Err != nil {
				fmt.Fprintf(e.stderr, "%s: %v\n", name, o.Err)
			}
		}
		return fmt.Errorf("%d of %d hosts failed (the others are applied as shown); fix and re-run apply: it resumes", failed, len(names))
	}
	return nil
}

// ensureAuth enables auth once the cluster serves, when the inventory
// asks for it.
func ensureAuth(ctx context.Context, e *env, i *inv.Inventory, cf *clientFlags) error {
	if !i.Cluster.Auth {
		return nil
	}
	m, err := cf.dialer(i)(i.ClientURLs())
	if err != nil {
		return err
	}
	defer m.Close()
	return provision.EnsureAuth(ctx, i, m, e.log)
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
