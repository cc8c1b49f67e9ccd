package installer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	humanize "github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/units"
	"github.com/etcd-appliance/appliance/workflow/backup"
)

func newBackupScheduledCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "scheduled",
		Short: "One scheduled backup on this member (what etcd-backup.service runs): the leader's snapshot, verified, then the retention",
		Long: "scheduled runs on a member's host, with the settings etcd-backup.service reads from " + layout.BackupConf + "\n" +
			"(BACKUP_CLUSTER, BACKUP_TOKEN, BACKUP_DIR, BACKUP_KEEP_LAST, BACKUP_KEEP_DAILY; rendered from the inventory's\n" +
			"[backup]). When this member is not the leader it skips, saying which member is. The leader saves a\n" +
			"snapshot to BACKUP_DIR with FILE.json (checksum, revision, key-space hash, members), restores it into a\n" +
			"scratch directory and compares the key-space hash; a backup that does not verify goes to BACKUP_DIR/failed\n" +
			"and the command fails. Then the retention deletes the verified backups beyond KEEP_LAST and one per day\n" +
			"for KEEP_DAILY days, and " + layout.BackupStatus + " records the last good backup (exported by etcd as metrics).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := unitEnv(render.BackupEnv(&inventory.Inventory{}), units.Backup, layout.BackupConf, "backup")
			if err != nil {
				return err
			}
			keepLast, err1 := strconv.Atoi(env["BACKUP_KEEP_LAST"])
			keepDaily, err2 := strconv.Atoi(env["BACKUP_KEEP_DAILY"])
			if err1 != nil || err2 != nil || keepLast < 1 || keepDaily < 0 {
				return fmt.Errorf("%s: BACKUP_KEEP_LAST=%q and BACKUP_KEEP_DAILY=%q must be counts; fix: etcd-installer apply", layout.BackupConf,
					env["BACKUP_KEEP_LAST"], env["BACKUP_KEEP_DAILY"])
			}
			s, err := hostSettings(cmd, units.Etcd)
			if err != nil {
				return err
			}
			cr, err := hostCredentials(s)
			if err != nil {
				return err
			}
			uid, gid, err := host.IDs("etcd")
			if err != nil {
				uid, gid = -1, -1
			}
			o := backup.ScheduledOptions{
				Cluster: env["BACKUP_CLUSTER"], Token: env["BACKUP_TOKEN"], Dir: env["BACKUP_DIR"],
				KeepLast: keepLast, KeepDaily: keepDaily, Name: s.Name, Endpoints: s.Endpoints, Cred: cr,
				UID: uid, GID: gid, Status: layout.BackupStatus, Progress: e.progress(),
			}
			if to := os.Getenv("BACKUP_COPY_TO"); to != "" {
				o.Copy = &backup.Copy{To: to, Dir: os.Getenv("BACKUP_COPY_DIR"), Dial: func() (host.Runner, func() error, error) {
					r, err := host.DialSSH(to, host.SSHConfig{KnownHosts: []string{layout.BackupKnownHosts}, KeyFile: layout.BackupSSHKey, AsUser: true,
						// apply writes that file from the operator's.
						KnownHostsSource: "~/.ssh/known_hosts of the operator who runs etcd-installer apply", KnownHostsThen: "run etcd-installer apply again (it writes " + layout.BackupKnownHosts + " from it)"})
					if err != nil {
						return nil, nil, err
					}
					return r, r.Close, nil
				}}
			}
			// systemd's SIGTERM (TimeoutStartSec=, systemctl stop) ends
			// the run through its cleanups (the scratch restore).
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := backup.Scheduled(ctx, o, e.log)
			if err != nil {
				return err
			}
			if res.Skipped != "" {
				fmt.Fprintln(e.stdout, "skipped:", res.Skipped)
				return nil
			}
			fmt.Fprintf(e.stdout, "%s: revision %d, %d keys, %s; saved in %s, verified in %s; %d old backups deleted by the retention\n",
				res.File, res.Info.Revision, res.Info.TotalKeys, humanize.IBytes(uint64(res.Info.Size)),
				res.Took.Round(time.Millisecond), res.Verify.Round(time.Millisecond), len(res.Deleted))
			if res.Copied != "" {
				fmt.Fprintf(e.stdout, "copied to %s; %d old copies deleted there by the retention\n", res.Copied, len(res.CopyDeleted))
			}
			return nil
		},
	}
}

func newBackupKeysCmd(e *env) *cobra.Command {
	var ssh sshFlags
	cmd := &cobra.Command{
		Use:   "keys INVENTORY",
		Short: "Print the members' SSH public keys for the [backup] copy_to host's authorized_keys",
		Long: "keys reads each member's " + layout.BackupSSHKey + ".pub (made by apply when the inventory's [backup] has copy_to)\n" +
			"and prints it as an authorized_keys line: restrict (no terminal, no forwarding) and, where the member's address\n" +
			"is an IP, from= that address, so that the key is refused from anywhere else. Append them to the copy_to\n" +
			"user's ~/.ssh/authorized_keys on that host: each member copies its verified backups there over SSH. The key\n" +
			"can run commands as that user (the copy uses mkdir, dd, sha256sum, mv, ls, cat and rm): give copy_to a user of\n" +
			"its own that holds nothing else. Drop from= when the members reach that host through other addresses (NAT).",
		Example: "  etcd-installer backup keys prod.toml | ssh backup@10.0.0.5 'cat >> ~/.ssh/authorized_keys'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, hosts, err := loadHosts(args[0], &ssh)
			if err != nil {
				return err
			}
			defer hosts.Close()
			if !i.Backup.Scheduled() || i.Backup.CopyTo == "" {
				return fmt.Errorf("%s has no [backup] copy_to, so the members copy their backups nowhere; fix: add copy_to and copy_dir under [backup] and apply", i.Source)
			}
			var errs []error
			for _, m := range i.Members {
				t, err := hosts.Target(m.Name)
				var pub []byte
				if err == nil {
					pub, err = t.FS.ReadFile(layout.BackupSSHKey + ".pub")
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w (apply makes it)", m.Name, err))
					continue
				}
				fmt.Fprintf(e.stdout, "%s %s\n", keyOptions(m), strings.TrimSpace(string(pub)))
			}
			return errors.Join(errs...)
		},
	}
	ssh.add(cmd)
	return cmd
}

// keyOptions are a member key's authorized_keys options: no terminal or
// forwarding, and only from the member's own address when it is an IP (a
// DNS name would make the copy host's sshd depend on reverse lookups).
func keyOptions(m inventory.Member) string {
	for _, a := range []string{m.IP, m.Address} {
		if ip := net.ParseIP(a); ip != nil && !ip.IsUnspecified() {
			return fmt.Sprintf("restrict,from=%q", ip.String())
		}
	}
	return "restrict"
}

func newBackupListCmd(e *env) *cobra.Command {
	var ssh sshFlags
	cmd := &cobra.Command{
		Use:   "list INVENTORY",
		Short: "List the scheduled backups on every member: time, revision, size, verified",
		Long: "list reads the inventory's [backup] dir on every member (here, or over SSH) and prints one line per\n" +
			"backup, oldest first, by the name `etcd-installer restore INVENTORY NAME` takes. A backup without metadata or not verified is listed with the reason, and is never\n" +
			"counted as good; those kept aside in failed/ are not listed.",
		Example: "  etcd-installer backup list prod.toml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, hosts, err := loadHosts(args[0], &ssh)
			if err != nil {
				return err
			}
			defer hosts.Close()
			if !i.Backup.Scheduled() {
				return fmt.Errorf("%s has no [backup] schedule, so its members keep no scheduled backups; fix: add [backup] schedule = \"hourly\" and apply", i.Source)
			}
			w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "HOST\tBACKUP\tTAKEN\tREVISION\tSIZE\tVERIFIED")
			var failed error
			for _, m := range i.Members {
				t, err := hosts.Target(m.Name)
				if err == nil {
					var list []backup.Listed
					if list, err = backup.List(t.FS, i.Backup.Dir); err == nil {
						for _, l := range list {
							verified := "no: " + fmt.Sprint(l.Err)
							if l.Err == nil {
								verified = l.Info.Verified.Format(time.RFC3339)
							}
							fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, filepath.Base(l.File), l.Info.TakenAt.Format(time.RFC3339), l.Info.Revision,
								humanize.IBytes(uint64(l.Info.Size)), verified)
						}
						continue
					}
				}
				fmt.Fprintf(w, "%s\t(%v)\t\t\t\t\n", m.Name, err)
				failed = errUnhealthy
			}
			w.Flush()
			return failed
		},
	}
	ssh.add(cmd)
	return cmd
}

// unitEnv reads the settings a scheduled unit's command gets from the
// environment its unit reads from conf (vars names them; their values are
// the inventory's, rendered by apply), all of them required: run by hand,
// the command says where they come from.
func unitEnv(vars []render.Var, unit, conf, section string) (map[string]string, error) {
	env := map[string]string{}
	for _, v := range vars {
		env[v.Key] = os.Getenv(v.Key)
		if env[v.Key] == "" {
			return nil, fmt.Errorf("%s is not set: run this from %s, which reads %s (etcd-installer apply writes it when the inventory has [%s] schedule)",
				v.Key, unit, conf, section)
		}
	}
	return env, nil
}
