package installer

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/provision"
)

func newApplyCmd(e *env) *cobra.Command {
	var (
		cf                             clientFlags
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
			"the cluster keeps quorum. A second run changes nothing.\n\n" + hostSelection,
		Example: `  etcd-installer apply prod.toml --dry-run
  etcd-installer apply prod.toml --host etcd1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, h, err := loadHost(args[0], host)
			if err != nil {
				return err
			}
			t := provision.Target{Host: h, FS: provision.LocalFS{Root: root}, Services: provision.Systemd{R: provision.LocalRunner{}}}
			res, err := provision.Apply(cmd.Context(), i, t, provision.ApplyOptions{
				DryRun: dryRun, NoStart: noStart, ForceRestart: force, Dial: cf.dialer(i),
			}, e.log)
			if err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if !dryRun && !noStart && !noWait {
				took, err := provision.WaitReady(cmd.Context(), t, wait, e.log)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "%s: %s; ready (%s)\n", h.Name, res.Summary(), took.Round(10*time.Millisecond))
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
	cf.add(cmd)
	cmd.Flags().StringVar(&host, "host", "", "the inventory host this machine is")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan and change nothing")
	cmd.Flags().BoolVar(&noStart, "no-start", false, "write files and enable the unit, but do not start it")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "start without waiting until the member is ready")
	cmd.Flags().BoolVar(&force, "force-restart", false, "restart a changed member even if the cluster may lose quorum")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for the member to become ready")
	cmd.Flags().StringVar(&root, "root", "/", "write under this directory instead of / (for testing)")
	return cmd
}
