package installer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/workflow/localcluster"
)

func newRunCmd(e *env) *cobra.Command {
	var dataDir string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "run INVENTORY",
		Short: "Run every member and proxy of a loopback inventory here, in the foreground",
		Long: "run starts every member and proxy of an inventory whose hosts are all this machine, as child\n" +
			"processes, with their logs prefixed by name, prints the cluster status once healthy, and stops\n" +
			"them gracefully in order on Ctrl-C. Data stays under --data-dir for the next run.\n" +
			"It supervises them like systemd's Restart=on-failure, with a back-off: a member that exits is\n" +
			"reported (for an exit it chose, with its last lines) and restarted after 1 s, doubling, unless it\n" +
			"exited cleanly or with a code restarting cannot fix (78 configuration, 79 removed, 80 old data),\n" +
			"when it stays down and the others run on; 5 failures of one member within 2 minutes, or no member\n" +
			"left running, stop the cluster and end run with an error. Health changes are printed as they happen.",
		Example: `  etcd-installer example local > local.toml && etcd-installer run local.toml
  etcd-installer run proxies.toml --data-dir /tmp/laptop`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			etcd, err := etcdBinary()
			if err != nil {
				return err
			}
			color := false
			if f, ok := e.stdout.(*os.File); ok {
				color = isatty.IsTerminal(f.Fd())
			}
			lc, err := localcluster.New(i, dataDir, etcd, e.stdout, color, e.log)
			if err != nil {
				return err
			}
			// SIGHUP: the terminal closed; the members must not outlive run.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			// Stopping must not be cut short by the signal that asked for it.
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := lc.Stop(sctx); err != nil {
					e.log.WithError(err).Error("stopping")
				}
				lc.Close()
			}()
			if err := lc.Start(ctx, wait); err != nil {
				return err
			}
			m, err := lc.Dial(lc.Inv.ClientURLs())
			if err != nil {
				return err
			}
			if err := cluster.EnsureAuth(ctx, lc.Inv, m, e.log); err != nil {
				m.Close()
				return err
			}
			cs := cluster.Status(ctx, lc.Inv, m)
			m.Close()
			if err := printStatus(e.stdout, cs, "table"); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "endpoints: %s\ndata: %s\nCtrl-C stops the cluster; its data stays for the next run.\n",
				strings.Join(lc.Inv.ClientURLs(), ","), lc.Inv.Cluster.DataDir)
			err = lc.Supervise(ctx, localcluster.SuperviseOptions{Out: e.stdout})
			// The error, if any, is printed once, as the command's.
			fmt.Fprintln(e.stdout, "run: stopping the cluster")
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", ".run", "where members keep their files and data")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the cluster to become ready")
	return cmd
}

// etcdBinary finds the etcd server: next to this program (the multi-call
// binary, or a build in bin/), else on PATH.
func etcdBinary() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "etcd")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("no etcd binary next to etcd-installer or on PATH: install the etcd package or run `make build`")
	}
	return p, nil
}
