package installer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/apply"
)

type applyFlags struct {
	cf                             clientFlags
	ssh                            sshFlags
	host, root                     string
	dryRun, noStart, force, noWait bool
	wait                           time.Duration
}

func newApplyCmd(e *env) *cobra.Command {
	var f applyFlags
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
			return runApply(cmd.Context(), e, i, &f)
		},
	}
	f.ssh.add(cmd)
	f.cf.add(cmd)
	cmd.Flags().StringVar(&f.host, "host", "", "the inventory host this machine is")
	addDryRunFlag(cmd, &f.dryRun)
	cmd.Flags().BoolVar(&f.noStart, "no-start", false, "write files and enable the unit, but do not start it")
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "start without waiting until the member is ready (members restarted one at a time are always waited for)")
	cmd.Flags().BoolVar(&f.force, "force-restart", false, "restart a changed member even if the cluster may lose quorum")
	cmd.Flags().DurationVar(&f.wait, "wait", 5*time.Minute, "how long to wait for the member to become ready")
	cmd.Flags().StringVar(&f.root, "root", "/", "write under this directory instead of / (for testing)")
	return cmd
}

func runApply(ctx context.Context, e *env, i *inventory.Inventory, f *applyFlags) error {
	files := f.cf.files()
	opts := apply.Options{NoStart: f.noStart, ForceRestart: f.force, Dial: files.Dialer(i), Plan: e.plan(f.dryRun)}
	certs, err := hostCerts(i, f.cf.certs)
	if err != nil {
		return err
	}
	waitReady := !f.dryRun && !f.noStart && !f.noWait
	if f.host == "" {
		if _, err := workflow.This(i, ""); err != nil {
			if !workflow.AllHaveSSH(i) {
				return fmt.Errorf("%w; or give every host an ssh target to provision them all from here", err)
			}
			hosts := f.ssh.hosts(i)
			defer hosts.Close()
			outs := apply.Every(ctx, i, hosts, apply.AllOptions{Options: opts, Extra: certs, WaitReady: waitReady, Wait: f.wait}, e.log)
			if err := printOutcomes(e, outs, waitReady); err != nil {
				return err
			}
			if waitReady {
				return ensureAuth(ctx, e, i, files)
			}
			return nil
		}
	}
	h, err := workflow.This(i, f.host)
	if err != nil {
		return err
	}
	if certs != nil {
		if opts.Extra, err = certs(h.Name); err != nil {
			return err
		}
	}
	t := workflow.Local(h)
	t.FS = host.LocalFS{Root: f.root}
	res, err := apply.Host(ctx, i, t, opts, e.log)
	if err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	if !waitReady {
		prefix := ""
		if f.dryRun {
			prefix = "dry run, would have: "
		}
		fmt.Fprintf(e.stdout, "%s: %s%s\n", h.Name, prefix, res.Summary())
		return nil
	}
	took, err := workflow.WaitReady(ctx, t, f.wait, e.log)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s; ready (%s)\n", h.Name, res.Summary(), took.Round(10*time.Millisecond))
	if err := ensureAuth(ctx, e, i, files); errors.Is(err, cluster.ErrNoPassword) {
		// Per-host applies run where the password may not be: the
		// operator enables auth from their machine.
		e.log.Warn("auth not enabled yet: " + err.Error())
	} else if err != nil {
		return err
	}
	return nil
}

// printOutcomes prints one row per host and, for hosts that failed, their
// errors. A failing host does not stop the parallel ones; the summary says
// which hosts are done, and a re-run resumes.
func printOutcomes(e *env, outs []apply.Outcome, waitReady bool) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tRESULT\tREADY")
	failed := 0
	for _, o := range outs {
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
		fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Name, summary, ready)
	}
	tw.Flush()
	if failed == 0 {
		return nil
	}
	for _, o := range outs {
		if o.Err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", o.Name, o.Err)
		}
	}
	return fmt.Errorf("%d of %d hosts failed (the others are applied as shown); fix and re-run apply: it resumes", failed, len(outs))
}

// ensureAuth enables auth once the cluster serves, when the inventory
// asks for it.
func ensureAuth(ctx context.Context, e *env, i *inventory.Inventory, files cluster.ClientFiles) error {
	if !i.Cluster.Auth {
		return nil
	}
	m, err := files.Dialer(i)(i.ClientURLs())
	if err != nil {
		return err
	}
	defer m.Close()
	return cluster.EnsureAuth(ctx, i, m, e.log)
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
