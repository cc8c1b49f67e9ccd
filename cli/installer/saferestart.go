package installer

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/units"
	"github.com/etcd-appliance/appliance/workflow/saferestart"
)

func newSafeRestartCmd(e *env) *cobra.Command {
	var (
		dryRun                          bool
		unit, reason                    string
		endpoints                       []string
		cacert, cert, key               string
		lockWait, readyWait, leaderWait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "safe-restart",
		Short: "Restart this host's etcd member only if its cluster keeps quorum, one member at a time (package upgrades run it)",
		Long: "safe-restart runs on a member's host. It takes the cluster's maintenance lock (a lease-held mutex in etcd,\n" +
			"through the other members), checks that the other voting members keep quorum without this one, restarts\n" +
			"the unit and waits until the member serves again (READY and a linearizable read through it), then\n" +
			"releases the lock. Run on every host at once (as `apt upgrade` on a fleet does), it restarts the members\n" +
			"one after the other. When the others could not keep quorum, or the cluster cannot be asked, it restarts\n" +
			"nothing, leaves the running etcd serving and says what to do (exit 1). A unit that is not running is\n" +
			"left alone (exit 0). The cluster is reached as etcdctl on the host is (/etc/etcd/etcdctl.env), else\n" +
			"through the member's own advertised client URLs.",
		Example: "  etcd-installer safe-restart\n  etcd-installer safe-restart --dry-run",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Bounded as a whole, and stopped (releasing the lock) by
			// SIGINT or SIGTERM: a package script must never hang.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ctx, cancel := context.WithTimeout(ctx, lockWait+readyWait+2*time.Minute)
			defer cancel()
			s, err := hostSettings(cmd, unit)
			if err != nil {
				return err
			}
			if len(endpoints) > 0 {
				s.Endpoints = endpoints
			}
			for _, f := range []struct {
				flag, file string
				dst        *string
			}{{"cacert", cacert, &s.CA}, {"cert", cert, &s.Cert}, {"key", key, &s.Key}} {
				if f.file != "" {
					*f.dst = f.file
				}
			}
			cr, err := hostCredentials(s)
			if err != nil {
				return err
			}
			hostname, _ := os.Hostname()
			o := saferestart.Options{
				Unit: unit, Name: s.Name, Endpoints: s.Endpoints,
				Dial:     func(eps []string) (cluster.Membership, error) { return cluster.DialWith(eps, cr) },
				Lock:     saferestart.EtcdLock(cr),
				Holder:   fmt.Sprintf("member %s on host %s (pid %d): %s", s.Name, hostname, os.Getpid(), reason),
				LockWait: lockWait, ReadyWait: readyWait, LeaderWait: leaderWait,
				Again: "etcd-installer safe-restart",
				Plan:  e.plan(dryRun),
			}
			res, err := saferestart.Run(ctx, host.Systemd{R: host.LocalRunner{}}, o, e.log)
			if err != nil {
				return err
			}
			switch {
			case res.Skipped != "":
				fmt.Fprintln(e.stdout, res.Skipped)
			case dryRun:
				return o.Plan.Print(e.stdout)
			default:
				fmt.Fprintf(e.stdout, "restarted %s (member %s): the lock after %s, serving again %s later\n",
					unit, s.Name, res.Lock.Round(10*time.Millisecond), res.Took.Round(10*time.Millisecond))
			}
			return nil
		},
	}
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().StringVar(&unit, "unit", units.Etcd, "the member's unit")
	cmd.Flags().StringVar(&reason, "reason", "etcd-installer safe-restart", "why, for whoever waits for the lock")
	cmd.Flags().StringSliceVar(&endpoints, "endpoints", nil, "client URLs of the cluster (default: ETCDCTL_ENDPOINTS of /etc/etcd/etcdctl.env)")
	cmd.Flags().StringVar(&cacert, "cacert", "", "CA certificate (default: ETCDCTL_CACERT of /etc/etcd/etcdctl.env)")
	cmd.Flags().StringVar(&cert, "cert", "", "client certificate (default: ETCDCTL_CERT of /etc/etcd/etcdctl.env)")
	cmd.Flags().StringVar(&key, "key", "", "client key (default: ETCDCTL_KEY of /etc/etcd/etcdctl.env)")
	cmd.Flags().DurationVar(&lockWait, "lock-wait", 20*time.Minute, "how long to wait for the maintenance lock (other members restarting)")
	cmd.Flags().DurationVar(&readyWait, "timeout", 15*time.Minute, "how long the restarted member may take to serve again (its start timeout)")
	cmd.Flags().DurationVar(&leaderWait, "leader-wait", 10*time.Minute, "the leader lets members waiting to restart go first, for up to this long (0: take turns in order)")
	return cmd
}

// hostSettings reads what this host says about its member and cluster:
// the unit's environment files and /etc/etcd/etcdctl.env.
func hostSettings(cmd *cobra.Command, unit string) (saferestart.Settings, error) {
	files, err := saferestart.EnvironmentFiles(cmd.Context(), host.LocalRunner{}, unit)
	if err != nil {
		return saferestart.Settings{}, fmt.Errorf("asking systemd for %s's environment files: %w", unit, err)
	}
	return saferestart.ReadSettings(host.LocalFS{Root: "/"}, files)
}

// hostCredentials are the host's client credentials (TLS files when the
// endpoints use TLS).
func hostCredentials(s saferestart.Settings) (cluster.Credentials, error) {
	var cr cluster.Credentials
	if anyTLS(s.Endpoints) {
		info := transport.TLSInfo{TrustedCAFile: s.CA, CertFile: s.Cert, KeyFile: s.Key}
		var err error
		if cr.TLS, err = info.ClientConfig(); err != nil {
			return cr, fmt.Errorf("client TLS from %s: %w; fix: pass --cacert, --cert and --key", strings.Join(s.From, ", "), err)
		}
	}
	return cr, nil
}

func anyTLS(endpoints []string) bool {
	for _, e := range endpoints {
		if strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "unixs://") {
			return true
		}
	}
	return false
}
