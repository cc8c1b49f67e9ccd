package installer

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

const certsLong = "certs keeps an inventory's certificate directory complete: a cluster CA (ECDSA P-256, ten\n" +
	"years; ca.key stays in this directory and is never copied to a host), and per member a server,\n" +
	"a peer and a client certificate whose names cover every name and address the inventory gives\n" +
	"it (and localhost, 127.0.0.1, ::1), per proxy a server certificate and a client certificate for\n" +
	"talking to the members, and the operator's client certificate in DIR/_operator for etcdctl and\n" +
	"etcd-installer on this machine. Leaves are valid for a year. Re-running keeps valid material and\n" +
	"issues only what is missing, changed in the inventory, or expires within 30 days.\n\n" +
	"apply and package pick up the directory (default: certs/ beside the inventory) and give each\n" +
	"host its own files only. etcd reads certificates at every handshake: renewed ones need no restart."

func newCertsCmd(e *env) *cobra.Command {
	var dir string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "certs INVENTORY [--dir DIR]",
		Short: "Create the cluster CA and every host's certificates (idempotent); `certs renew` re-issues them",
		Long:  certsLong,
		Example: `  etcd-installer certs prod.toml                # writes certs/ beside prod.toml
  etcd-installer certs prod.toml --dir /secure/prod-pki
  etcd-installer certs renew prod.toml && etcd-installer apply prod.toml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCerts(e, args[0], dir, false, dryRun)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "certificate directory (default: certs/ beside the inventory)")
	addDryRunFlag(cmd, &dryRun)
	var renewDir string
	var renewDry bool
	renew := &cobra.Command{
		Use:   "renew INVENTORY [--dir DIR]",
		Short: "Issue every host's and the operator's certificates again, keeping the CA",
		Long: "renew re-issues every leaf certificate with a new key and a new year of validity; the CA\n" +
			"stays, so hosts and clients keep trusting each other during the roll-out. Then run apply\n" +
			"(or build new node packages): etcd picks the new files up at the next handshake.",
		Example: "  etcd-installer certs renew prod.toml\n  etcd-installer apply prod.toml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCerts(e, args[0], renewDir, true, renewDry)
		},
	}
	renew.Flags().StringVar(&renewDir, "dir", "", "certificate directory (default: certs/ beside the inventory)")
	addDryRunFlag(renew, &renewDry)
	cmd.AddCommand(renew)
	return cmd
}

func runCerts(e *env, path, dirFlag string, renew, dryRun bool) error {
	i, err := load(path)
	if err != nil {
		return err
	}
	dir := pki.Dir(dirFlag, i.Dir)
	if !i.TLSEnabled() {
		fmt.Fprintf(e.stderr, "warning: %s renders plain http (tls = %q): these certificates are not used until TLS is on\n", path, i.Cluster.TLS)
	}
	plan := e.plan(dryRun)
	acts, err := certs.Ensure(dir, i, time.Now(), renew, plan)
	if dryRun {
		if err != nil {
			return err
		}
		return plan.Print(e.stdout)
	}
	printCertActions(e, dir, acts)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "CA key: %s (stays on this machine: keep a copy offline; apply never copies it)\n", filepath.Join(dir, "ca.key"))
	fmt.Fprintf(e.stdout, "next: etcd-installer apply %s%s\n", path, certsArg(dirFlag, i))
	return nil
}

// certsArg is the --certs flag other commands need for a non-default
// directory.
func certsArg(dirFlag string, i *inventory.Inventory) string {
	if dirFlag == "" || filepath.Clean(dirFlag) == filepath.Join(i.Dir, "certs") {
		return ""
	}
	return " --certs " + dirFlag
}

func printCertActions(e *env, dir string, acts []certs.CertAction) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	kept := 0
	for _, a := range acts {
		if strings.HasPrefix(a.Action, "kept: the existing CA") {
			fmt.Fprintf(e.stdout, "CA: using %s (%s)\n", filepath.Join(dir, a.Path), strings.TrimPrefix(a.Action, "kept: "))
		}
		if strings.HasPrefix(a.Action, "kept") {
			kept++
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", filepath.Join(dir, a.Path), a.Action)
	}
	tw.Flush()
	changed := len(acts) - kept
	word := "certificates"
	if changed == 1 {
		word = "certificate"
	}
	fmt.Fprintf(e.stdout, "%s: %d %s issued, %d kept%s\n", dir, changed, word, kept,
		map[bool]string{true: " (nothing to do)", false: ""}[changed == 0])
}

// certFiles are host's certificate files from the certificate directory
// dirFlag (certs/ beside the inventory when empty), if any.
func certFiles(i *inventory.Inventory, dirFlag, host string) ([]render.File, error) {
	src, err := certs.From(i, dirFlag)
	if err != nil {
		return nil, err
	}
	return src.For(host)
}
