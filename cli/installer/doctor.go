package installer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/doctor"
)

var errFindings = errors.New("doctor found failures")

func newDoctorCmd(e *env) *cobra.Command {
	var cf clientFlags
	var ssh sshFlags
	var host, output string
	cmd := &cobra.Command{
		Use:   "doctor INVENTORY [--host NAME]",
		Short: "Find and explain what keeps a host or the cluster from working, with the fix",
		Long: "doctor checks the env file, the unit and what it waits for, the data dir (owner, mode, cluster),\n" +
			"ports, peers' reachability, clock skew and disk fsync latency. Without --host it checks this\n" +
			"machine when it is a host, else every host over SSH. It exits 1 when a check fails.",
		Example: "  etcd-installer doctor prod.toml\n  etcd-installer doctor prod.toml --host etcd1 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := load(args[0])
			if err != nil {
				return err
			}
			tc, err := cf.files().TLS(i)
			if err != nil {
				return err
			}
			hosts := ssh.hosts(i)
			defer hosts.Close()
			var names []string
			if host != "" {
				names = []string{host}
			} else if h, err := workflow.This(i, ""); err == nil {
				names = []string{h.Name}
			} else {
				for _, h := range i.Hosts() {
					names = append(names, h.Name)
				}
			}
			all, err := doctor.Hosts(cmd.Context(), i, args[0], hosts, names, doctor.Options{TLS: tc})
			if err != nil {
				return err
			}
			if err := printFindings(e.stdout, all, output); err != nil {
				return err
			}
			for _, f := range all {
				if f.Level == doctor.Fail.String() {
					return errFindings
				}
			}
			return nil
		},
	}
	cf.add(cmd)
	ssh.add(cmd)
	cmd.Flags().StringVar(&host, "host", "", "check only this host")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func printFindings(w io.Writer, fs []doctor.Finding, output string) error {
	if output == "json" {
		if fs == nil {
			fs = []doctor.Finding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(fs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range fs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Level, f.Host, f.Check, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(tw, "\t\t\tfix: %s\n", f.Fix)
		}
	}
	return tw.Flush()
}

func newInspectCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:     "inspect-data-dir DIR",
		Short:   "Print what an etcd data dir holds, as JSON (used over SSH)",
		Example: "  etcd-installer inspect-data-dir /var/lib/etcd/etcd0",
		Hidden:  true,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := datadir.Inspect(args[0], args[0])
			if err != nil {
				return err
			}
			return json.NewEncoder(e.stdout).Encode(info)
		},
	}
}
