package installer

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/provision"
)

func newBackupCmd(e *env) *cobra.Command {
	var cf clientFlags
	var out string
	cmd := &cobra.Command{
		Use:     "backup INVENTORY --out FILE",
		Short:   "Save a snapshot from a healthy member, with its checksum and cluster metadata in FILE.json",
		Example: `  etcd-installer backup prod.toml --out /backup/prod-$(date +%F).db`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			cr, err := cf.credentials(i)
			if err != nil {
				return err
			}
			m, err := provision.DialWith(i.ClientURLs(), cr)
			if err != nil {
				return err
			}
			defer m.Close()
			info, err := provision.Backup(cmd.Context(), i, m, cr, out, e.log)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: snapshot of cluster %s from %s at revision %d, %d bytes, sha256 %s\n",
				out, info.Cluster, info.Member, info.Revision, info.Size, info.SHA256)
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&out, "out", "", "snapshot file to write (required)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newRestoreCmd(e *env) *cobra.Command {
	var cf clientFlags
	var hs hosts
	var yes bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "restore INVENTORY FILE",
		Short: "Replace every member's data with a backup: stop all, keep old data aside, restore, start, verify",
		Long: "restore checks FILE against FILE.json, stops every member, moves each data dir aside (kept),\n" +
			"restores the snapshot on each member with its name and peer URL, starts all members together\n" +
			"and checks that every member holds the snapshot's key space. It asks for confirmation.\n" +
			"If a host fails before the start, every member is put back on its old data and started again\n" +
			"(a partly restored data dir is kept as DIR.failed-restore-DATE).",
		Example: "  etcd-installer restore prod.toml /backup/prod-2026-11-21.db",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			info, err := provision.ReadBackupInfo(args[1])
			if err != nil {
				return err
			}
			if !yes {
				fmt.Fprintf(e.stdout, "restore stops every member of cluster %s (%d), moves their data dirs aside and\n"+
					"replaces the data with the snapshot of %s taken %s (revision %d).\n"+
					"Type the cluster name to continue: ", i.Cluster.Name, len(i.Members), info.Cluster, info.TakenAt.Format(time.RFC3339), info.Revision)
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if strings.TrimSpace(line) != i.Cluster.Name {
					return errors.New("not confirmed: nothing changed")
				}
			}
			defer hs.close()
			var targets []provision.Target
			for _, m := range i.Members {
				t, err := hs.target(i, m.Name)
				if err != nil {
					return err
				}
				targets = append(targets, t)
			}
			return provision.Restore(cmd.Context(), i, args[1], targets, cf.dialer(i), wait, e.log)
		},
	}
	cf.add(cmd)
	hs.ssh.add(cmd)
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for the restored cluster")
	return cmd
}
