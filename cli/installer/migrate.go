package installer

import (
	"errors"
	"fmt"

	humanize "github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/workflow/migrate"
)

func newMigrateCmd(e *env) *cobra.Command {
	var dryRun, check bool
	var root string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Take this host over from its distribution's etcd: its settings, and its data restored for etcd 3.7",
		Long: "migrate runs on a host that ran its distribution's etcd (Debian's and Ubuntu's etcd-server, EL's etcd).\n" +
			"It finds that etcd's settings (/etc/default/etcd, or an /etc/etcd/etcd.conf this package did not write)\n" +
			"and data (/var/lib/etcd/default, /var/lib/etcd/default.etcd), translates the settings through the\n" +
			"server's own parser into /etc/etcd/etcd.conf, and, when the data was written by etcd 3.5 or older\n" +
			"(which etcd 3.7 refuses to open), restores its key space with etcdutl into a new data dir, checks it\n" +
			"key by key against the old one, keeps the old dir untouched under a dated name and moves the new one\n" +
			"into its place. The configuration is written last. A member of a multi-member cluster, and etcd 2.x\n" +
			"data, are refused with what to do instead (docs/migration.md).",
		Example: "  etcd-installer migrate --dry-run\n  etcd-installer migrate && systemctl start etcd",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := host.LocalFS{Root: root, IgnoreOwner: root != "/"}
			hostname, _ := host.Identity()
			if check {
				return migrateCheck(e, f, hostname)
			}
			owner := "etcd"
			if root != "/" {
				owner = ""
			}
			plan := e.plan(dryRun)
			res, err := migrate.Run(cmd.Context(), f, hostname, migrate.Options{Plan: plan, Owner: owner}, e.log)
			if errors.Is(err, migrate.ErrNothing) {
				fmt.Fprintln(e.stdout, "nothing to migrate:", err)
				return nil
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(e.stderr, "warning:", w)
			}
			if err != nil {
				return err
			}
			src := res.Source
			fmt.Fprintf(e.stdout, "found %s: member %s, data dir %s", src.Style+" etcd", src.Name, src.DataDir)
			if src.Data.Initialized {
				fmt.Fprintf(e.stdout, " written by %s (%s)", src.Data.WrittenBy(), humanize.Bytes(uint64(src.Data.Size)))
			}
			fmt.Fprintln(e.stdout)
			if dryRun {
				fmt.Fprint(e.stdout, res.Diff)
				return plan.Print(e.stdout)
			}
			if res.Restored {
				fmt.Fprintf(e.stdout, "migrated: %d keys at revision %d, checked against the old backend; the old data dir is kept as %s (%s)\n",
					res.Keys, res.Revision, res.Kept, res.MigrationTaken.Round(1e6))
			} else if res.UpToDate && src.Data.Initialized {
				fmt.Fprintf(e.stdout, "the data dir needs no migration: etcd 3.7 opens data of %s\n", src.Data.WrittenBy())
			}
			fmt.Fprintf(e.stdout, "wrote /etc/etcd/etcd.conf from %s; next: %s\n", src.Style+" etcd's settings", res.StartCommand)
			if h := migrate.PurgeHazard(f); h != "" {
				fmt.Fprintln(e.stdout, "warning:", h)
			}
			return nil
		},
	}
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().BoolVar(&check, "check", false, "only say whether there is something to migrate (for package scripts); always exit 0")
	cmd.Flags().StringVar(&root, "root", "/", "the host's files are under this directory (for testing)")
	return cmd
}

// migrateCheck prints one line when a distribution's etcd left settings or
// data here, and nothing otherwise; it never fails.
func migrateCheck(e *env, f host.LocalFS, hostname string) error {
	if h := migrate.PurgeHazard(f); h != "" {
		defer fmt.Fprintln(e.stdout, "etcd: warning:", h)
	}
	src, err := migrate.Find(f, hostname)
	switch {
	case errors.Is(err, migrate.ErrNothing):
		return nil
	case err != nil:
		fmt.Fprintf(e.stdout, "etcd: found a previous etcd's files, but reading them failed (%v); see `etcd-installer migrate --dry-run`\n", err)
	case src.Data.Initialized && (src.Data.V2 || src.Data.OlderThan(3, 6)):
		fmt.Fprintf(e.stdout, "etcd: %s holds data written by %s (member %s, %s), which etcd 3.7 will not open as it is; "+
			"run `etcd-installer migrate` before starting etcd (it keeps the old data)\n",
			src.DataDir, src.Data.WrittenBy(), src.Name, humanize.Bytes(uint64(src.Data.Size)))
	default:
		fmt.Fprintf(e.stdout, "etcd: found the settings of %s etcd (%s); `etcd-installer migrate` carries them over into /etc/etcd/etcd.conf\n",
			src.Style, src.DataDir)
	}
	return nil
}
