package installer

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/internal/version"
	"github.com/etcd-appliance/appliance/packaging"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

func newPackageCmd(e *env) *cobra.Command {
	var out, ver, rev, certsFlag string
	var hosts []string
	var dryRun bool
	var mtime int64
	cmd := &cobra.Command{
		Use:   "package INVENTORY --out DIR",
		Short: "Build an etcd-node-HOST deb and rpm per host: its configuration, enabling and starting etcd",
		Long: "package renders each host's files and wraps them as etcd-node-HOST packages (deb and rpm,\n" +
			"architecture-independent, depending on the etcd package). Installing one configures, enables\n" +
			"and starts the host's unit; removing it stops and disables it. Publish them to a repository\n" +
			"and provision with `apt install etcd-node-etcd0`. Raise --revision to publish a change.\n\n" +
			"With TLS on and a certificate directory (--certs, default certs/ beside the inventory), each\n" +
			"host's package carries its certificates and private keys: publish such packages only to a\n" +
			"repository as private as the keys.",
		Example: `  etcd-installer package prod.toml --out pkgs/
  etcd-installer package prod.toml --out pkgs/ --revision 2 --host etcd0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := givenNames(cmd, "host", hosts); err != nil {
				return err
			}
			i, err := load(args[0])
			if err != nil {
				return err
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
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
