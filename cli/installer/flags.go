package installer

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
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

// backupKnownHosts is the [backup] copy_to host's known_hosts, from these
// flags' known_hosts files, for apply to give the members (nil without
// copy_to).
func (s *sshFlags) backupKnownHosts(i *inventory.Inventory) ([]byte, error) {
	if !i.Backup.Scheduled() || i.Backup.CopyTo == "" {
		return nil, nil
	}
	b, err := host.KnownHostsFor(i.Backup.CopyTo, s.knownHosts)
	if err != nil {
		return nil, fmt.Errorf("backup.copy_to in %s: %w", i.Source, err)
	}
	return b, nil
}

// hosts reaches the inventory's hosts with these flags, this machine
// without SSH when it is one of them; the caller closes it.
func (s *sshFlags) hosts(i *inventory.Inventory) *workflow.Hosts {
	this, _, _ := workflow.ThisMachine(i, "")
	return s.reach(i, workflow.Selection{This: this.Name})
}

// reach is hosts for a selection made with hostFlags.
func (s *sshFlags) reach(i *inventory.Inventory, sel workflow.Selection) *workflow.Hosts {
	return &workflow.Hosts{Inv: i, SSH: host.SSHConfig{KeyFile: s.key, KnownHosts: s.knownHosts}, This: sel.This}
}

// hostFlags are the two host flags, one meaning each, on every command
// that acts on hosts: --host selects them, --this-host says which one this
// machine is.
type hostFlags struct {
	hosts []string
	this  string
	cmd   *cobra.Command
}

func (f *hostFlags) add(cmd *cobra.Command, verb string) {
	f.cmd = cmd
	cmd.Flags().StringSliceVar(&f.hosts, "host", nil, verb+" only these hosts (repeat or separate with commas); a host that is not this machine is reached over its ssh target")
	cmd.Flags().StringVar(&f.this, "this-host", "", "this machine is the inventory host NAME (refused unless its hostname or addresses match NAME's)")
}

// selection resolves the flags against the inventory.
func (f *hostFlags) selection(i *inventory.Inventory) (workflow.Selection, error) {
	if err := givenNames(f.cmd, "host", f.hosts); err != nil {
		return workflow.Selection{}, err
	}
	if err := givenNames(f.cmd, "this-host", []string{f.this}); err != nil {
		return workflow.Selection{}, err
	}
	return workflow.Select(i, f.hosts, f.this)
}

// givenNames refuses a host flag given without a name: `--host "$H"` with
// H unset must not read as no --host at all (every host).
func givenNames(cmd *cobra.Command, flag string, names []string) error {
	if cmd == nil || !cmd.Flags().Changed(flag) {
		return nil
	}
	if len(names) == 0 {
		return fmt.Errorf("--%s was given an empty name: name the host (--%s etcd0), or leave the flag out", flag, flag)
	}
	for _, n := range names {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("--%s %q has an empty name: name each host (--%s etcd0,etcd1)", flag, strings.Join(names, ","), flag)
		}
	}
	return nil
}

// clientFlags are how commands that talk to the cluster prove who they
// are (cluster.ClientFiles chooses what they leave empty).
type clientFlags struct {
	cacert, cert, key string
	certs             string
}

func (c *clientFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.cacert, "cacert", "", "cluster CA certificate (default: the inventory's ca_file on a host, else DIR/_operator/ca.crt of --certs)")
	cmd.Flags().StringVar(&c.cert, "cert", "", "client certificate (default: the inventory's client_cert_file on a host, else DIR/_operator/client.crt)")
	cmd.Flags().StringVar(&c.key, "key", "", "client key (default: the inventory's client_key_file on a host, else DIR/_operator/client.key)")
	addCertsFlag(cmd, &c.certs)
}

func (c *clientFlags) files() cluster.ClientFiles {
	return cluster.ClientFiles{CA: c.cacert, Cert: c.cert, Key: c.key, CertsDir: c.certs}
}

func addCertsFlag(cmd *cobra.Command, dir *string) {
	if cmd.Flags().Lookup("certs") == nil {
		cmd.Flags().StringVar(dir, "certs", "", "certificate directory of `etcd-installer certs` (default: certs/ beside the inventory)")
	}
}

func addDryRunFlag(cmd *cobra.Command, dryRun *bool) {
	cmd.Flags().BoolVar(dryRun, "dry-run", false, "print what would be done, per host, and change nothing")
}

// plan is the dry-run guard of one command run.
func (e *env) plan(dryRun bool) *workflow.Plan { return workflow.NewPlan(dryRun, e.log) }

// loadHosts loads an inventory and reaches its hosts with the SSH flags;
// the caller closes the hosts.
func loadHosts(path string, ssh *sshFlags) (*inventory.Inventory, *workflow.Hosts, error) {
	i, err := load(path)
	if err != nil {
		return nil, nil, err
	}
	return i, ssh.hosts(i), nil
}
