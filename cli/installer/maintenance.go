package installer

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	humanize "github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/units"
	"github.com/etcd-appliance/appliance/workflow/maintenance"
	"github.com/etcd-appliance/appliance/workflow/saferestart"
)

func newMaintenanceCmd(e *env) *cobra.Command {
	var cf clientFlags
	var dryRun, all bool
	var freePercent int
	var minFree string
	var lockWait time.Duration
	cmd := &cobra.Command{
		Use:     "maintenance INVENTORY",
		Aliases: []string{"defrag"},
		Short:   "Defragment the members whose backend is mostly free pages, one at a time, and clear the space alarm where it safely can",
		Long: "maintenance defragments each member whose backend is at least --free-percent free pages (and --min-free),\n" +
			"one at a time under the cluster's maintenance lock (the one package upgrades take), never while a member\n" +
			"is unhealthy, followers first, the leader last after handing its leadership to a follower: a member\n" +
			"serves no reads or writes while it is defragmented. When the NOSPACE alarm is raised, it compacts the key\n" +
			"space to the current revision, defragments every member and disarms the alarm if every backend is then\n" +
			"under 80% of its quota; otherwise it leaves the alarm raised and says which prefixes hold the space and\n" +
			"how to raise the quota. The inventory's [maintenance] schedule runs " + units.MaintenanceTimer + " on the members\n" +
			"(`maintenance scheduled`), which defragments by safe restarts instead, so that no client waits on a member.",
		Example: "  etcd-installer maintenance prod.toml --dry-run\n  etcd-installer maintenance prod.toml\n  etcd-installer defrag prod.toml --all",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			min, err := inventory.ParseQuota(minFree)
			if err != nil || min < 1<<20 || freePercent < 1 || freePercent > 100 {
				return fmt.Errorf("--free-percent %d and --min-free %q: use 1..100 and a size of at least 1MiB such as 100MiB", freePercent, minFree)
			}
			cr, err := cf.files().Credentials(i)
			if err != nil {
				return err
			}
			c, err := cluster.DialWith(i.ClientURLs(), cr)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hostname, _ := os.Hostname()
			o := maintenance.Options{
				FreePercent: freePercent, MinFree: min, All: all,
				Lock: cluster.EtcdLocker(cr), LockWait: lockWait,
				Holder:     fmt.Sprintf("etcd-installer maintenance on host %s (pid %d)", hostname, os.Getpid()),
				RaiseQuota: "raise cluster.quota_backend in " + i.Source + " (at most 8GiB) and apply",
				Plan:       e.plan(dryRun),
			}
			res, err := maintenance.Run(ctx, c, o, e.log)
			if dryRun && err == nil {
				return o.Plan.Print(e.stdout)
			}
			report(e, res)
			return err
		},
	}
	cf.add(cmd)
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().BoolVar(&all, "all", false, "defragment every member, fragmented or not")
	cmd.Flags().IntVar(&freePercent, "free-percent", maintenance.DefaultFreePercent, "defragment a member whose backend is at least this share of free pages")
	cmd.Flags().StringVar(&minFree, "min-free", "100MiB", "... and at least this much")
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 20*time.Minute, "how long to wait for the maintenance lock before each member")
	cmd.AddCommand(newMaintenanceScheduledCmd(e))
	return cmd
}

func report(e *env, res maintenance.Result) {
	if res.Skipped != "" {
		fmt.Fprintln(e.stdout, "skipped:", res.Skipped)
		return
	}
	if res.NoSpace {
		fmt.Fprintf(e.stdout, "alarm NOSPACE was raised: compacted to revision %d; disarmed: %v\n", res.Compacted, res.Disarmed)
	}
	for _, d := range res.Defragmented {
		moved := ""
		if d.LeaderTo != "" {
			moved = ", after handing leadership to " + d.LeaderTo
		}
		fmt.Fprintf(e.stdout, "defragmented %s: %s -> %s in %s%s\n", d.Name, humanize.IBytes(uint64(d.Before)), humanize.IBytes(uint64(d.After)),
			d.Took.Round(time.Millisecond), moved)
	}
	for _, f := range res.Fine {
		fmt.Fprintln(e.stdout, "left alone", f)
	}
}

func newMaintenanceScheduledCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "scheduled",
		Short: "One scheduled maintenance on this host (what etcd-maintenance.service runs): its member restarted and defragmented at start when fragmented; NOSPACE cleared by the leader's host",
		Long: "scheduled runs on a member's host, with the settings etcd-maintenance.service reads from " + layout.MaintenanceConf + "\n" +
			"(MAINTENANCE_CLUSTER, MAINTENANCE_FREE_PERCENT, MAINTENANCE_MIN_FREE; rendered from the inventory's [maintenance]).\n" +
			"Each host defragments its own member when it passes the threshold, by a safe restart (the maintenance lock, the\n" +
			"quorum check, READY and a read): etcd defragments at start, before it serves, while its clients use the other\n" +
			"members (an online defragmentation stalls every request sent to the member for its whole duration). The\n" +
			"leader's host waits until no follower needs it; a leader stopping hands its leadership over. With NOSPACE\n" +
			"raised, the leader's host does what `etcd-installer maintenance INVENTORY` does. A run that cannot do its\n" +
			"work fails (and so does the unit).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := unitEnv(render.MaintenanceEnv(&inventory.Inventory{}), units.Maintenance, layout.MaintenanceConf, "maintenance")
			if err != nil {
				return err
			}
			// The threshold file etcd.service reads must go when the run
			// ends, however it ends: only systemd's RuntimeDirectory
			// promises that.
			if rd := os.Getenv("RUNTIME_DIRECTORY"); rd != filepath.Dir(layout.DefragmentEnv) {
				return fmt.Errorf("RUNTIME_DIRECTORY is %q, not %s: run this as %s (systemctl start %s), whose RuntimeDirectory removes %s when the run ends",
					rd, filepath.Dir(layout.DefragmentEnv), units.Maintenance, units.Maintenance, layout.DefragmentEnv)
			}
			pct, err1 := strconv.Atoi(env["MAINTENANCE_FREE_PERCENT"])
			min, err2 := strconv.ParseInt(env["MAINTENANCE_MIN_FREE"], 10, 64)
			if err1 != nil || err2 != nil || pct < 1 || pct > 100 || min < 1<<20 {
				return fmt.Errorf("%s: MAINTENANCE_FREE_PERCENT=%q and MAINTENANCE_MIN_FREE=%q must be a share and a size in bytes; fix: etcd-installer apply",
					layout.MaintenanceConf, env["MAINTENANCE_FREE_PERCENT"], env["MAINTENANCE_MIN_FREE"])
			}
			s, err := hostSettings(cmd, units.Etcd)
			if err != nil {
				return err
			}
			cr, err := hostCredentials(s)
			if err != nil {
				return err
			}
			c, err := cluster.DialWith(s.Endpoints, cr)
			if err != nil {
				return err
			}
			defer c.Close()
			// systemd's SIGTERM (TimeoutStartSec=, systemctl stop) ends
			// the run, releasing the lock.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			hostname, _ := os.Hostname()
			o := maintenance.Options{
				Self: s.Name, FreePercent: pct, MinFree: min,
				Lock: cluster.EtcdLocker(cr),
				// Each host ahead holds the lock for a restart with a
				// defragmentation (up to an hour each): under the unit's
				// TimeoutStartSec=4h.
				LockWait:   3 * time.Hour,
				Holder:     fmt.Sprintf("member %s on host %s (pid %d): %s", s.Name, hostname, os.Getpid(), units.Maintenance),
				RaiseQuota: "raise cluster.quota_backend in the inventory of cluster " + strings.TrimSpace(env["MAINTENANCE_CLUSTER"]) + " (at most 8GiB) and apply",
			}
			restart := func(ctx context.Context, why string, held cluster.HeldLock) error {
				ro := saferestart.Options{
					Unit: units.Etcd, Name: s.Name, Endpoints: s.Endpoints,
					Dial:     func(eps []string) (cluster.Membership, error) { return cluster.DialWith(eps, cr) },
					Held:     held,
					Holder:   fmt.Sprintf("member %s on host %s (pid %d): %s", s.Name, hostname, os.Getpid(), why),
					LockWait: 20 * time.Minute, ReadyWait: time.Hour,
					Again: "systemctl start " + units.Maintenance,
				}
				res, err := saferestart.Run(ctx, host.Systemd{R: host.LocalRunner{}}, ro, e.log)
				if err == nil && res.Skipped != "" {
					err = fmt.Errorf("not restarted: %s", res.Skipped)
				}
				return err
			}
			res, err := maintenance.Scheduled(ctx, c, o, maintenance.DefragAtStart(host.LocalFS{Root: "/"}, min, restart), e.log)
			report(e, res)
			return err
		},
	}
}
