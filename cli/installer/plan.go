package installer

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	udiff "github.com/aymanbagabas/go-udiff"
	"github.com/spf13/cobra"

	inv "github.com/etcd-appliance/appliance/installer"
)

func newPlanCmd(e *env) *cobra.Command {
	var host, root string
	cmd := &cobra.Command{
		Use:   "plan INVENTORY [--host NAME]",
		Short: "Show what apply would change on this host, as a unified diff",
		Long:  "plan renders this host's files and compares them with the files on disk.\n\n" + hostSelection,
		Example: `  etcd-installer plan prod.toml
  etcd-installer plan prod.toml --host etcd1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, h, err := loadHost(args[0], host)
			if err != nil {
				return err
			}
			files, err := inv.RenderHost(i, h.Name, inv.MemberOptions{})
			if err != nil {
				return err
			}
			changes := 0
			for _, f := range files {
				d, err := planFile(root, f)
				if err != nil {
					return err
				}
				if d != "" {
					changes++
					fmt.Fprint(e.stdout, d)
				}
			}
			if changes == 0 {
				fmt.Fprintf(e.stdout, "%s: no changes\n", h.Name)
			} else {
				fmt.Fprintf(e.stdout, "%s: %d file(s) would change\n", h.Name, changes)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "the inventory host this machine is")
	cmd.Flags().StringVar(&root, "root", "/", "compare with files under this directory instead of /")
	return cmd
}

// planFile returns the diff between the file on disk and the rendered one,
// including mode differences; "" when they match.
func planFile(root string, f inv.File) (string, error) {
	p := filepath.Join(root, f.Path)
	old, err := os.ReadFile(p)
	label := f.Path
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return udiff.Unified("/dev/null", label+" (new)", "", string(f.Data)), nil
	case err != nil:
		return "", err
	}
	d := udiff.Unified(label+" (on host)", label+" (rendered)", string(old), string(f.Data))
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm() != f.Mode.Perm() {
		d += fmt.Sprintf("%s: mode %04o -> %04o\n", label, fi.Mode().Perm(), f.Mode.Perm())
	}
	return d, nil
}

// hostSelection explains how commands find which host this machine is.
const hostSelection = "The host is --host, else the inventory host named like this machine, else the one\n" +
	"with a local address."

// loadHost loads an inventory and finds this machine in it.
func loadHost(path, explicit string) (*inv.Inventory, inv.Host, error) {
	i, err := load(path)
	if err != nil {
		return nil, inv.Host{}, err
	}
	h, err := identify(i, explicit)
	return i, h, err
}

// identify picks the inventory host this machine is.
func identify(i *inv.Inventory, explicit string) (inv.Host, error) {
	hostname, _ := os.Hostname()
	var ips []net.IP
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	return i.IdentifyHost(explicit, hostname, ips)
}
