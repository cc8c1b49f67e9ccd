package installer

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/etcd-appliance/appliance/internal/parallel"

	"github.com/spf13/cobra"

	inv "github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/provision"
)

// sshFlags say how to reach hosts that are not this machine.
type sshFlags struct {
	key        string
	knownHosts []string
}

func (s *sshFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.key, "ssh-key", "", "private key for SSH (default: the SSH agent, then ~/.ssh/id_*)")
	cmd.Flags().StringSliceVar(&s.knownHosts, "known-hosts", nil, "known_hosts files (default ~/.ssh/known_hosts); host keys are always checked")
}

// hosts resolves inventory hosts to targets: this machine when it is the
// host, else over SSH. close releases the connections.
type hosts struct {
	ssh   sshFlags
	mu    sync.Mutex
	conns []*provision.SSHRunner
}

func (h *hosts) close() {
	for _, c := range h.conns {
		c.Close()
	}
}

func localTarget(host inv.Host) provision.Target {
	return provision.Target{Host: host, FS: provision.LocalFS{Root: "/"}, Services: provision.Systemd{R: provision.LocalRunner{}}, Runner: provision.LocalRunner{}}
}

// isLocal reports whether this machine is the host.
func isLocal(i *inv.Inventory, name string) bool {
	h, err := identify(i, "")
	return err == nil && h.Name == name
}

func (h *hosts) target(i *inv.Inventory, name string) (provision.Target, error) {
	host, ok := i.Host(name)
	if !ok {
		return provision.Target{}, fmt.Errorf("%s has no member or proxy %s", i.Source, name)
	}
	if isLocal(i, name) {
		return localTarget(host), nil
	}
	if host.SSH == "" {
		return provision.Target{}, fmt.Errorf("%s is not this machine and has no ssh target in %s: run the command on %s, or add ssh = \"user@host\" to its table",
			name, i.Source, name)
	}
	r, err := provision.DialSSH(host.SSH, provision.SSHConfig{KeyFile: h.ssh.key, KnownHosts: h.ssh.knownHosts})
	if err != nil {
		return provision.Target{}, err
	}
	h.mu.Lock()
	h.conns = append(h.conns, r)
	h.mu.Unlock()
	return provision.Target{Host: host, FS: provision.RunnerFS{R: r}, Services: provision.Systemd{R: r}, Runner: r}, nil
}

// remoteInstaller runs `etcd-installer COMMAND INVENTORY ARGS...` on a
// host with the inventory copied there, for checks that must run on the
// host itself.
func remoteInstaller(ctx context.Context, r provision.Runner, inventoryPath, command string, args ...string) ([]byte, error) {
	data, err := os.ReadFile(inventoryPath)
	if err != nil {
		return nil, err
	}
	dir, err := r.Run(ctx, nil, "mktemp", "-d", "/tmp/etcd-installer.XXXXXX")
	if err != nil {
		return nil, err
	}
	d := strings.TrimSpace(string(dir))
	defer r.Run(context.WithoutCancel(ctx), nil, "rm", "-rf", d)
	remote := d + "/" + baseName(inventoryPath)
	if _, err := r.Run(ctx, strings.NewReader(string(data)), "dd", "of="+remote, "status=none"); err != nil {
		return nil, err
	}
	argv := append([]string{"etcd-installer", command, remote}, args...)
	return r.Run(ctx, nil, argv...)
}

func baseName(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

// each runs f for every name in parallel and joins the errors.
func each(names []string, f func(name string) error) error {
	return parallel.Each(names, func(_ int, n string) error {
		if err := f(n); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		return nil
	})
}
