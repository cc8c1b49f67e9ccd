package installer

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/apply"
)

func newPlanCmd(e *env) *cobra.Command {
	var hf hostFlags
	var root string
	// SSH with the defaults (the agent or ~/.ssh/id_*, ~/.ssh/known_hosts).
	var ssh sshFlags
	cmd := &cobra.Command{
		Use:   "plan INVENTORY [--host NAME,...]",
		Short: "Show what apply would change on each host, as a unified diff",
		Long: "plan renders each host's files and compares them with the files on that host: the files\n" +
			"apply would write, each with its diff (private keys are never shown). It reads the host's\n" +
			"own files: this machine's directly, any other host's over SSH.\n\n" + hostSelection + "\n\n" +
			"--root DIR compares with files under DIR instead (a staging tree): name the host whose\n" +
			"files DIR holds with --this-host; it is not checked against this machine, since plan only\n" +
			"reads DIR.",
		Example: `  etcd-installer plan prod.toml
  etcd-installer plan prod.toml --host etcd1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			var sel workflow.Selection
			if root != "/" {
				if sel, err = stagingSelection(i, hf); err != nil {
					return err
				}
			} else if sel, err = hf.selection(i); err != nil {
				return err
			}
			hosts := ssh.reach(i, sel)
			defer hosts.Close()
			for _, name := range sel.Names {
				t, err := hosts.Target(name)
				if err != nil {
					return err
				}
				if name == sel.This {
					// Another root is a staging tree: its owners are not
					// the host's.
					t.FS = host.LocalFS{Root: root, IgnoreOwner: root != "/"}
				}
				if err := planHost(cmd.Context(), e, i, t, &ssh); err != nil {
					return err
				}
			}
			return nil
		},
	}
	ssh.add(cmd)
	hf.add(cmd, "compare")
	cmd.Flags().StringVar(&root, "root", "/", "compare with files under this directory instead of / (with --this-host)")
	return cmd
}

// stagingSelection is plan's selection with --root: one host, named with
// --this-host (or found as this machine), whose files the root holds.
func stagingSelection(i *inventory.Inventory, hf hostFlags) (workflow.Selection, error) {
	if len(hf.hosts) > 0 {
		return workflow.Selection{}, errors.New("--root compares a directory of this machine with one host's files: name that host with --this-host, not --host")
	}
	if hf.this == "" {
		h, ok, why := workflow.ThisMachine(i, "")
		if !ok {
			return workflow.Selection{}, fmt.Errorf("--root: name the host whose files it holds with --this-host NAME (%w)", why)
		}
		hf.this = h.Name
	}
	if _, ok := i.Host(hf.this); !ok {
		return workflow.Selection{}, i.UnknownHost("--this-host", hf.this)
	}
	return workflow.Selection{This: hf.this, Names: []string{hf.this}}, nil
}

// planHost prints the diff of every file apply would write on t.
func planHost(ctx context.Context, e *env, i *inventory.Inventory, t workflow.Target, ssh *sshFlags) error {
	kh, err := ssh.backupKnownHosts(i)
	if err != nil {
		return err
	}
	extra, err := certFiles(i, "", t.Host.Name)
	if err != nil {
		// The rendered files are still worth seeing; apply refuses these
		// certificates until `certs` re-issues them.
		e.log.WithField("host", t.Host.Name).Warn("not comparing certificates: " + err.Error())
	}
	res, err := apply.Diff(ctx, i, t, apply.Options{Extra: extra, BackupKnownHosts: kh})
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

// hostSelection explains the two host flags every command shares.
const hostSelection = "Hosts: --host NAME acts on the named hosts (repeat it or separate names with commas),\n" +
	"this machine directly when it is one of them, the others over their ssh target. Without\n" +
	"--host, a command acts on this machine when it is a host (named like it, or with one of its\n" +
	"addresses), else on every host when each has an ssh target. --this-host NAME says that this\n" +
	"machine is NAME; it is refused unless this machine's hostname or addresses match NAME's."
