package installer

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/version"
	"github.com/etcd-appliance/appliance/packaging"
	"github.com/etcd-appliance/appliance/packaging/repo"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

func newPackageCmd(e *env) *cobra.Command {
	var out, ver, rev, certsFlag, repoDir, repoURL string
	var hosts []string
	var dryRun bool
	var mtime int64
	cmd := &cobra.Command{
		Use:   "package INVENTORY --out DIR",
		Short: "Build an etcd-node-HOST deb and rpm per host (its configuration, enabling and starting etcd) and the cluster's etcd-monitoring-CLUSTER",
		Long: "package renders each host's files and wraps them as etcd-node-HOST packages (deb and rpm,\n" +
			"architecture-independent, depending on the etcd package). Installing one configures, enables\n" +
			"and starts the host's unit; removing it stops and disables it. Publish them to a repository\n" +
			"and provision with `apt install etcd-node-etcd0`. Raise --revision to publish a change.\n\n" +
			"Without --host it also builds etcd-monitoring-CLUSTER, for the Prometheus and Grafana host: the\n" +
			"cluster's alert rules in /etc/prometheus/rules, its dashboard provisioned into Grafana, and the\n" +
			"scrape job in /usr/share/etcd-monitoring/CLUSTER (docs/observability.md).\n\n" +
			"With TLS on and a certificate directory (--certs, default certs/ beside the inventory), each\n" +
			"host's package carries its certificates and private keys: publish such packages only to a\n" +
			"repository as private as the keys.\n\n" +
			"--repo DIR also makes DIR (0700; new, empty or a repository made before: it is replaced as a\n" +
			"whole) a signed apt and yum repository of these packages,\n" +
			"signed with your key: ETCD_SIGNING_KEY names an armored secret key file (mode 0600),\n" +
			"ETCD_SIGNING_PASSPHRASE_FILE its passphrase file. Serve DIR privately at --repo-url; hosts\n" +
			"then install with `apt install etcd-node-etcd0` or `dnf install etcd-node-etcd0` (DIR holds\n" +
			"the key and the etcd-node.sources and etcd-node.repo snippets).",
		Example: `  etcd-installer package prod.toml --out pkgs/
  etcd-installer package prod.toml --out pkgs/ --revision 2 --host etcd0
  ETCD_SIGNING_KEY=~/keys/ops.asc etcd-installer package prod.toml --out pkgs/ --repo repo/ --repo-url https://10.0.0.2/etcd-node`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := givenNames(cmd, "host", hosts); err != nil {
				return err
			}
			i, err := load(args[0])
			if err != nil {
				return err
			}
			// The key and the tools are checked before anything is built.
			var signer *repo.Signer
			if repoDir != "" {
				if os.Getenv(repo.KeyEnv) == "" {
					return fmt.Errorf("--repo signs the repository with your key: set %s to an armored secret key file "+
						"(gpg --armor --export-secret-keys KEYID > ops.asc; chmod 600 ops.asc), and %s to its passphrase file if it has one",
						repo.KeyEnv, repo.PassphraseEnv)
				}
				if err := repo.CheckTools(); err != nil {
					return err
				}
				work, err := os.MkdirTemp("", "etcd-node-repo-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(work)
				s, done, err := repo.SignerFromEnv(cmd.Context(), work, "")
				if err != nil {
					return err
				}
				defer done()
				signer = s
			}
			mt := time.Now()
			if mtime != 0 {
				mt = time.Unix(mtime, 0)
			}
			src, err := certs.From(i, certsFlag)
			if err != nil {
				return err
			}
			plan := e.plan(dryRun)
			o := packaging.NodeOptions{Version: ver, Revision: rev, MTime: mt.UTC(), Out: out, Hosts: hosts, Plan: plan, Certs: src}
			paths, err := packaging.NodePackages(i, o, version.Etcd)
			if err != nil {
				return err
			}
			// The whole cluster's: its alert rules and dashboard, for the
			// Prometheus and Grafana host.
			if len(hosts) == 0 {
				mp, err := packaging.MonitoringPackage(i, o)
				if err != nil {
					return err
				}
				paths = append(paths, mp...)
			}
			if repoDir != "" {
				if err := plan.Do("", "make "+repoDir+" (0700) a signed apt and yum repository of these packages for "+repoURL, func() error {
					return nodeRepo(cmd.Context(), e, signer, paths, repoDir, repoURL, mt)
				}); err != nil {
					return err
				}
			}
			if dryRun {
				return plan.Print(e.stdout)
			}
			for _, p := range paths {
				fmt.Fprintln(e.stdout, p)
			}
			if src != nil && len(paths) > 0 {
				fmt.Fprintf(e.stderr, "warning: these packages hold the hosts' private keys (files 0600 in %s, 0700): "+
					"publish them only to a repository as private as the keys\n", out)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory (required)")
	addCertsFlag(cmd, &certsFlag)
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().StringVar(&ver, "version", "1.0", "package version")
	cmd.Flags().StringVar(&rev, "revision", "1", "package revision: raise it for every change you publish")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "build only these hosts")
	cmd.Flags().Int64Var(&mtime, "mtime", 0, "file times in Unix seconds, for reproducible packages (default: now)")
	cmd.Flags().StringVar(&repoDir, "repo", "", "also make this directory a signed apt and yum repository of the packages (key: $"+repo.KeyEnv+")")
	cmd.Flags().StringVar(&repoURL, "repo-url", "https://repo.example.com/etcd-node", "where --repo will be served (for the snippets)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// nodeRepo makes dir a signed repository of the per-host packages with
// the operator's key. It holds private keys when the packages do: the
// directory is the operator's alone (0700), and holds this run's packages
// only (a removed host's keys do not linger).
func nodeRepo(ctx context.Context, e *env, s *repo.Signer, pkgs []string, dir, url string, date time.Time) error {
	res, err := repo.Build(ctx, host.LocalRunner{}, dir, pkgs, s, repo.Options{
		Name: "etcd-node", Title: "etcd appliance hosts", BaseURL: strings.TrimSuffix(url, "/"), Date: date,
		DebArches: []string{"amd64", "arm64"}, RPMArches: []string{"x86_64", "aarch64"}, Private: true,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: signed apt and yum repository (%d debs, %d rpms) by %s; serve it privately at %s\n",
		dir, res.Debs, res.RPMs, s.Fingerprint(), url)
	return nil
}
