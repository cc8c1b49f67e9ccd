package installer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
	var hf hostFlags
	var reachedAs, output string
	cmd := &cobra.Command{
		Use:   "doctor INVENTORY [--host NAME,...]",
		Short: "Find and explain what keeps a host or the cluster from working, with the fix",
		Long: "doctor checks the env file, the unit and what it waits for, the data dir (owner, mode, cluster),\n" +
			"ports, peers' reachability, clock skew and disk fsync latency, one line per check. It exits 1\n" +
			"when a check fails.\n\n" + hostSelection,
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
			var sel workflow.Selection
			if reachedAs != "" {
				if _, ok := i.Host(reachedAs); !ok {
					return i.UnknownHost(doctor.ReachedAsFlag, reachedAs)
				}
				sel = workflow.Selection{This: reachedAs, Names: []string{reachedAs}}
			} else if sel, err = hf.selection(i); err != nil {
				return err
			}
			hosts := ssh.reach(i, sel)
			defer hosts.Close()
			all, err := doctor.Hosts(cmd.Context(), i, args[0], hosts, sel.Names, doctor.Options{TLS: tc})
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
	hf.add(cmd, "check")
	cmd.Flags().StringVar(&reachedAs, strings.TrimPrefix(doctor.ReachedAsFlag, "--"), "", "set by doctor when it runs itself over SSH on host NAME")
	_ = cmd.Flags().MarkHidden(strings.TrimPrefix(doctor.ReachedAsFlag, "--"))
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
