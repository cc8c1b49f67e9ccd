package installer

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/workflow/apply"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

func newApplyCmd(e *env) *cobra.Command {
	var (
		cf                             clientFlags
		ssh                            sshFlags
		hf                             hostFlags
		root                           string
		dryRun, noStart, force, noWait bool
		lockWait                       time.Duration
		wait                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply INVENTORY [--host NAME,...]",
		Short: "Make hosts what the inventory says: files, unit, start; idempotent",
		Long: "apply renders each host's files, writes those that changed (atomically, with owner and mode),\n" +
			"reloads systemd if a unit changed, enables and starts the unit without blocking, and waits until\n" +
			"it is ready. A running member whose configuration changed is restarted only when the rest of\n" +
			"the cluster keeps quorum. A second run changes nothing.\n\n" + hostSelection + "\n\n" +
			"Hosts reached over SSH are applied in parallel, their units started together and waited for;\n" +
			"running members whose configuration changed restart one at a time, the leader last, each\n" +
			"serving before the next.\n\n" +
			"With TLS on and a certificate directory (--certs, default certs/ beside the inventory, made\n" +
			"by `etcd-installer certs`), each host gets its own certificates and keys; the CA key stays.\n" +
			"With auth = true, once the cluster serves apply creates the root user (password from\n" +
			"root_password_file), a read-only role and user, and enables auth.",
		Example: `  etcd-installer apply prod.toml --dry-run
  etcd-installer apply prod.toml --host etcd1
  etcd-installer apply prod.toml --this-host etcd1   # run on etcd1 itself`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			sel, err := hf.selection(i)
			if err != nil {
				return err
			}
			hosts := ssh.reach(i, sel)
			defer hosts.Close()
			src, err := certs.From(i, cf.certs)
			if err != nil {
				return err
			}
			kh, err := ssh.backupKnownHosts(i)
			if err != nil {
				return err
			}
			req := apply.Request{
				Options: apply.Options{NoStart: noStart, ForceRestart: force, LockWait: lockWait, Dial: cf.files().Dialer(i), Plan: e.plan(dryRun),
					BackupKnownHosts: kh},
				Sel: sel, Root: root, Hosts: hosts, Certs: src,
				WaitReady: !dryRun && !noStart && !noWait, Wait: wait,
			}
			rep, err := apply.Run(cmd.Context(), i, req, e.log)
			printReport(e, rep, req)
			return err
		},
	}
	ssh.add(cmd)
	cf.add(cmd)
	hf.add(cmd, "apply")
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().BoolVar(&noStart, "no-start", false, "write files and enable the unit, but do not start it")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "start without waiting until the member is ready (members restarted one at a time are always waited for)")
	cmd.Flags().BoolVar(&force, "force-restart", false, "restart a changed member even if the cluster may lose quorum (and without the maintenance lock)")
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 20*time.Minute, "how long a rolling restart waits for the cluster's maintenance lock (a package upgrade restarting a member elsewhere)")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for the member to become ready")
	cmd.Flags().StringVar(&root, "root", "/", "write this machine's files under this directory instead of / (for testing)")
	return cmd
}

// printReport prints one line for this machine, or a table with one row
// per host applied from here, and the errors of the hosts that failed. A
// dry run says so on every line and shows the rolling restart's order.
func printReport(e *env, rep apply.Report, req apply.Request) {
	dry := req.Plan.DryRun()
	summary := func(o apply.Outcome) string {
		if dry {
			return o.Res.Plans()
		}
		return o.Res.Summary()
	}
	if !rep.Remote {
		for _, o := range rep.Outcomes {
			switch {
			case o.Err != nil:
			case dry:
				fmt.Fprintf(e.stdout, "%s: dry run, nothing changed: %s\n", o.Name, summary(o))
			case req.WaitReady && o.Took > 0:
				fmt.Fprintf(e.stdout, "%s: %s; ready (%s)\n", o.Name, summary(o), o.Took.Round(10*time.Millisecond))
			case !req.WaitReady:
				fmt.Fprintf(e.stdout, "%s: %s\n", o.Name, summary(o))
			}
		}
		return
	}
	if dry {
		fmt.Fprintln(e.stdout, "dry run: nothing was changed; apply without --dry-run would do this")
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if dry {
		fmt.Fprintln(tw, "HOST\tWOULD\tRESTART ORDER")
	} else {
		fmt.Fprintln(tw, "HOST\tRESULT\tREADY")
	}
	for _, o := range rep.Outcomes {
		last := "-"
		switch {
		case o.Err != nil:
			last = "FAILED at " + o.Stage + ": " + firstLineOf(o.Err.Error())
		case dry && o.Rolling:
			last = fmt.Sprintf("%d of %d, one at a time", o.Order, o.Of)
			if o.Leader {
				last += " (the leader, last)"
			}
		case dry:
		case req.WaitReady || o.Rolling:
			last = o.Took.Round(10 * time.Millisecond).String()
		}
		s := summary(o)
		if o.Err != nil {
			s = "-"
		}
		if o.Rolling && o.Err == nil && !dry {
			s += fmt.Sprintf(" (rolling, %d of %d", o.Order, o.Of)
			if o.Leader {
				s += ", the leader"
			}
			s += ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Name, s, last)
	}
	tw.Flush()
	for _, o := range rep.Outcomes {
		if o.Err != nil {
			fmt.Fprintf(e.stderr, "%s: %v\n", o.Name, o.Err)
		}
	}
}

func firstLineOf(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
