package installer

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/apply"
)

func newPlanCmd(e *env) *cobra.Command {
	var hostName, root string
	// SSH with the defaults (the agent or ~/.ssh/id_*, ~/.ssh/known_hosts).
	var ssh sshFlags
	cmd := &cobra.Command{
		Use:   "plan INVENTORY [--host NAME]",
		Short: "Show what apply would change on this host, as a unified diff",
		Long: "plan renders this host's files and compares them with the files on disk: the files apply\n" +
			"would write, each with its diff (private keys are never shown).\n\n" + hostSelection + "\n\n" +
			"On a machine that is none of the hosts, when every host has an ssh target, plan compares\n" +
			"every host's files over SSH.",
		Example: `  etcd-installer plan prod.toml
  etcd-installer plan prod.toml --host etcd1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			var targets []workflow.Target
			if _, err := workflow.This(i, hostName); err != nil && hostName == "" && workflow.AllHaveSSH(i) {
				hosts := ssh.hosts(i)
				defer hosts.Close()
				for _, h := range i.Hosts() {
					t, err := hosts.Target(h.Name)
					if err != nil {
						return err
					}
					targets = append(targets, t)
				}
			} else {
				h, err := workflow.This(i, hostName)
				if err != nil {
					return err
				}
				t := workflow.Local(h)
				// Another root is a staging tree: its owners are not the
				// host's.
				t.FS = host.LocalFS{Root: root, IgnoreOwner: root != "/"}
				targets = append(targets, t)
			}
			for _, t := range targets {
				if err := planHost(cmd.Context(), e, i, t); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&hostName, "host", "", "the inventory host this machine is")
	cmd.Flags().StringVar(&root, "root", "/", "compare with files under this directory instead of /")
	return cmd
}

// planHost prints the diff of every file apply would write on t.
func planHost(ctx context.Context, e *env, i *inventory.Inventory, t workflow.Target) error {
	extra, err := certFiles(i, "", t.Host.Name)
	if err != nil {
		// The rendered files are still worth seeing; apply refuses these
		// certificates until `certs` re-issues them.
		e.log.WithField("host", t.Host.Name).Warn("not comparing certificates: " + err.Error())
	}
	res, err := apply.Diff(ctx, i, t, apply.Options{Extra: extra})
	if err != nil {
		return fmt.Errorf("%s: %w", t.Host.Name, err)
	}
	for _, f := range res.Files {
		fmt.Fprint(e.stdout, f.Diff)
	}
	if len(res.Files) == 0 {
		fmt.Fprintf(e.stdout, "%s: no changes\n", t.Host.Name)
	} else {
		fmt.Fprintf(e.stdout, "%s: %d file(s) would change\n", t.Host.Name, len(res.Files))
	}
	return nil
}

// hostSelection explains how commands find which host this machine is.
const hostSelection = "The host is --host, else the inventory host named like this machine, else the one\n" +
	"with a local address."
