package installer

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/backup"
)

func newBackupCmd(e *env) *cobra.Command {
	var cf clientFlags
	var out string
	var dryRun, force bool
	var endpoints []string
	cmd := &cobra.Command{
		Use:   "backup {INVENTORY | --endpoints URLS} --out FILE",
		Short: "Save a snapshot from a healthy member, with its checksum and cluster metadata in FILE.json",
		Long: "backup saves a snapshot from a healthy member (the leader when it is healthy), checks it, and writes\n" +
			"FILE.json beside it with its checksum and the cluster's metadata, which restore checks first.\n" +
			"--endpoints backs up a cluster that has no inventory, such as one running a distribution's etcd\n" +
			"3.4 or 3.5 (the v3 API is the same): restore the file into a cluster provisioned from an\n" +
			"inventory (docs/migration.md).",
		Example: `  etcd-installer backup prod.toml --out /backup/prod-$(date +%F).db
  etcd-installer backup prod.toml --out /backup/prod.db --dry-run
  etcd-installer backup --endpoints http://10.0.0.1:2379,http://10.0.0.2:2379,http://10.0.0.3:2379 --out old.db`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (len(endpoints) > 0) {
				return errors.New("backup takes an inventory or --endpoints (one of them): etcd-installer backup prod.toml --out FILE")
			}
			var i *inventory.Inventory
			var err error
			if len(endpoints) > 0 {
				i, err = inventory.ForEndpoints(endpoints)
			} else {
				i, err = load(args[0])
			}
			if err != nil {
				return err
			}
			cr, err := cf.files().Credentials(i)
			if err != nil {
				return err
			}
			m, err := cluster.DialWith(i.ClientURLs(), cr)
			if err != nil {
				return err
			}
			defer m.Close()
			plan := e.plan(dryRun)
			info, err := backup.Save(cmd.Context(), i, m, cr, backup.SaveOptions{Out: out, Force: force, Plan: plan, Progress: e.progress()}, e.log)
			if err != nil {
				return err
			}
			if dryRun {
				return plan.Print(e.stdout)
			}
			fmt.Fprintf(e.stdout, "%s: snapshot of cluster %s from %s at revision %d, %d bytes, sha256 %s\n",
				out, info.Cluster, info.Member, info.Revision, info.Size, info.SHA256)
			return nil
		},
	}
	cf.add(cmd)
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().StringVar(&out, "out", "", "snapshot file to write (required; FILE.json beside it holds its metadata)")
	cmd.Flags().BoolVar(&force, "force", false, "replace an existing backup at --out (once the new snapshot checks out)")
	cmd.Flags().StringSliceVar(&endpoints, "endpoints", nil, "client URLs of a cluster that has no inventory (comma-separated), instead of INVENTORY")
	_ = cmd.MarkFlagRequired("out")
	cmd.AddCommand(newBackupScheduledCmd(e), newBackupListCmd(e), newBackupKeysCmd(e))
	return cmd
}

func newRestoreCmd(e *env) *cobra.Command {
	var cf clientFlags
	var ssh sshFlags
	var yes, dryRun bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "restore INVENTORY {FILE | NAME}",
		Short: "Replace every member's data with a backup: stop all, keep old data aside, restore, start, verify",
		Long: "restore checks FILE against FILE.json, stops every member, moves each data dir aside (kept),\n" +
			"restores the snapshot on each member with its name and peer URL, starts all members together\n" +
			"and checks that every member holds the snapshot's key space. It asks for confirmation\n" +
			"(not with --dry-run, which only prints what it would do per host).\n" +
			"If a host fails before the start, every member is put back on its old data and started again\n" +
			"(a partly restored data dir is kept as DIR.failed-restore-DATE).\n" +
			"NAME is a scheduled backup as `etcd-installer backup list` shows it: it is copied from the member\n" +
			"that keeps it (here, or over SSH) and checked the same way.",
		Example: "  etcd-installer restore prod.toml /backup/prod-2026-11-21.db --dry-run\n" +
			"  etcd-installer restore prod.toml /backup/prod-2026-11-21.db\n" +
			"  etcd-installer restore prod.toml prod-20261130T210000Z.db",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, hosts, err := loadHosts(args[0], &ssh)
			if err != nil {
				return err
			}
			defer hosts.Close()
			file := args[1]
			if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) && i.Backup.Scheduled() && !strings.Contains(file, "/") {
				// A scheduled backup by name, from the member that keeps it.
				tmp, err := os.MkdirTemp("", "etcd-restore-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				from := map[string]backup.DirReader{}
				var names []string
				for _, m := range i.Members {
					if t, err := hosts.Target(m.Name); err == nil {
						from[m.Name] = t.FS
						names = append(names, m.Name)
					}
				}
				var on string
				if file, on, err = backup.Fetch(args[1], i.Backup.Dir, from, names, tmp); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "restoring the scheduled backup %s, copied from %s\n", args[1], on)
			}
			info, err := backup.ReadInfo(file)
			if err != nil {
				return err
			}
			if !yes && !dryRun {
				fmt.Fprintf(e.stdout, "restore stops every member of cluster %s (%d), moves their data dirs aside and\n"+
					"replaces the data with the snapshot of %s taken %s (revision %d).\n"+
					"Type the cluster name to continue: ", i.Cluster.Name, len(i.Members), info.Cluster, info.TakenAt.Format(time.RFC3339), info.Revision)
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if strings.TrimSpace(line) != i.Cluster.Name {
					return errors.New("not confirmed: nothing changed")
				}
			}
			var targets []workflow.Target
			for _, m := range i.Members {
				t, err := hosts.Target(m.Name)
				if err != nil {
					return err
				}
				targets = append(targets, t)
			}
			plan := e.plan(dryRun)
			o := backup.RestoreOptions{Dial: cf.files().Dialer(i), Wait: wait, Plan: plan}
			if err := backup.Restore(cmd.Context(), i, file, targets, o, e.log); err != nil {
				return err
			}
			return printDryRun(e, plan)
		},
	}
	cf.add(cmd)
	ssh.add(cmd)
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for the restored cluster")
	return cmd
}

// progress reports long operations on stderr: one line rewritten in place
// on a terminal, timestamped lines otherwise.
func (e *env) progress() backup.Progress {
	return backup.Progress{W: e.stderr, TTY: e.tty}
}
