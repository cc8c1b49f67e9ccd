package installer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	humanize "github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/cluster"
)

// errUnhealthy makes health exit non-zero; the report is already printed.
var errUnhealthy = errors.New("cluster not healthy")

func newStatusCmd(e *env) *cobra.Command {
	var cf clientFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status INVENTORY",
		Short: "One row per member: ID, version, DB size, leader, learner, raft term and index, certificate expiry, health",
		Example: `  etcd-installer status prod.toml
  etcd-installer status prod.toml -o json | jq '.endpoints[] | select(.healthy|not)'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := clusterStatus(cmd.Context(), args[0], &cf)
			if err != nil {
				return err
			}
			return printStatus(e.stdout, cs, output)
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

func newHealthCmd(e *env) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:     "health INVENTORY",
		Short:   "Exit 0 when every member is healthy, 1 otherwise, saying why",
		Example: "  etcd-installer health prod.toml && echo healthy",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := clusterStatus(cmd.Context(), args[0], &cf)
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, cs.Verdict())
			for _, p := range cs.Problems {
				fmt.Fprintln(e.stdout, "  "+p)
			}
			for _, w := range cs.Warnings {
				fmt.Fprintln(e.stdout, "warning: "+w)
			}
			if !cs.Healthy {
				return errUnhealthy
			}
			return nil
		},
	}
	cf.add(cmd)
	return cmd
}

func clusterStatus(ctx context.Context, path string, cf *clientFlags) (cluster.ClusterStatus, error) {
	i, err := load(path)
	if err != nil {
		return cluster.ClusterStatus{}, err
	}
	m, err := cf.files().Dialer(i)(i.ClientURLs())
	if err != nil {
		return cluster.ClusterStatus{}, err
	}
	defer m.Close()
	return cluster.Status(ctx, i, m), nil
}

func printStatus(w io.Writer, cs cluster.ClusterStatus, output string) error {
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(cs)
	case "table":
	default:
		return fmt.Errorf("--output %s: use table or json", output)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENDPOINT\tID\tVERSION\tDB SIZE\tLEADER\tLEARNER\tTERM\tINDEX\tCERT EXPIRES\tHEALTH\tERRORS")
	for _, r := range cs.Rows {
		health := "healthy"
		switch {
		case r.Removed:
			health = "REMOVED"
		case !r.Healthy:
			health = "UNHEALTHY"
		}
		size := "-"
		if r.ID != "" {
			size = humanize.Bytes(uint64(r.DBSize))
		}
		// The served certificate's expiry (TLS only): "-" without TLS
		// or when the handshake failed.
		expires := "-"
		if r.CertExpires != nil {
			expires = r.CertExpires.UTC().Format("2006-01-02")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%t\t%d\t%d\t%s\t%s\t%s\n", r.Name, r.Endpoint, dash(r.ID), dash(r.Version), size,
			r.Leader, r.Learner, r.RaftTerm, r.RaftIndex, expires, health, strings.Join(r.Errors, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if _, err := fmt.Fprintln(w, cs.Verdict()); err != nil {
		return err
	}
	for _, warn := range cs.Warnings {
		if _, err := fmt.Fprintln(w, "warning: "+warn); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
