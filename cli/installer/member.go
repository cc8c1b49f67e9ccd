package installer

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/member"
)

func newMemberCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "member",
		Short:   "Add, remove or replace members of a running cluster",
		Example: "  etcd-installer member add prod.toml etcd3\n  etcd-installer member remove prod.toml etcd3\n  etcd-installer member replace prod.toml etcd1",
	}
	cmd.AddCommand(newMemberAddCmd(e), newMemberRemoveCmd(e), newMemberReplaceCmd(e))
	return cmd
}

func newMemberAddCmd(e *env) *cobra.Command {
	return memberJoinCmd(e, &cobra.Command{
		Use:   "add INVENTORY NAME",
		Short: "Add the inventory member NAME: as a learner, apply its host, promote once caught up",
		Long: "The inventory must already list NAME. member add adds it as a learner, applies its host with\n" +
			"initial-cluster-state=existing and the cluster's current members, waits until it has caught up\n" +
			"and promotes it. Add several members one at a time. Re-running resumes an interrupted add.",
		Example: "  etcd-installer member add prod.toml etcd3 --dry-run\n  etcd-installer member add prod.toml etcd3",
	}, member.Add, "add even when some members are unhealthy")
}

// memberJoinCmd completes cmd as a command that brings an inventory
// member into the running cluster on its host (add, replace): the same
// arguments, flags, certificates and dry run, run by do.
func memberJoinCmd(e *env, cmd *cobra.Command, do func(context.Context, *inventory.Inventory, string, workflow.Target, member.Options, logrus.FieldLogger) error, forceHelp string) *cobra.Command {
	var cf clientFlags
	var ssh sshFlags
	var force, dryRun bool
	var wait time.Duration
	cmd.Args = cobra.ExactArgs(2)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		i, hosts, err := loadHosts(args[0], &ssh)
		if err != nil {
			return err
		}
		defer hosts.Close()
		if err := member.Addable(i, args[1]); err != nil {
			return err
		}
		t, err := hosts.Target(args[1])
		if err != nil {
			return err
		}
		plan := e.plan(dryRun)
		o := member.Options{Dial: cf.files().Dialer(i), Wait: wait, Force: force, Plan: plan, Progress: e.progress()}
		if o.Extra, err = certFiles(i, cf.certs, args[1]); err != nil {
			return err
		}
		if o.BackupKnownHosts, err = ssh.backupKnownHosts(i); err != nil {
			return err
		}
		if err := do(cmd.Context(), i, args[1], t, o, e.log); err != nil {
			return err
		}
		return printDryRun(e, plan)
	}
	cf.add(cmd)
	ssh.add(cmd)
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().BoolVar(&force, "force", false, forceHelp)
	cmd.Flags().DurationVar(&wait, "wait", 5*time.Minute, "how long to wait for the member to start and catch up")
	return cmd
}

func newMemberRemoveCmd(e *env) *cobra.Command {
	var cf clientFlags
	var ssh sshFlags
	var force, dryRun bool
	cmd := &cobra.Command{
		Use:   "remove INVENTORY NAME",
		Short: "Remove member NAME, stop and disable it on its host, keep its data dir aside",
		Long: "member remove refuses when the remaining members could not keep quorum (unless --force),\n" +
			"removes the member, stops and disables etcd on its host and moves its data dir aside (kept,\n" +
			"named with the date) so the host can join again later.",
		Example: "  etcd-installer member remove prod.toml etcd3 --dry-run\n  etcd-installer member remove prod.toml etcd3",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, hosts, err := loadHosts(args[0], &ssh)
			if err != nil {
				return err
			}
			defer hosts.Close()
			var tp *workflow.Target
			if t, err := hosts.Target(args[1]); err == nil {
				tp = &t
			} else {
				e.log.WithError(err).Warn("cannot reach the member's host: removing it from the cluster only")
			}
			plan := e.plan(dryRun)
			if err := member.Remove(cmd.Context(), i, args[1], tp, member.Options{Dial: cf.files().Dialer(i), Force: force, Plan: plan}, e.log); err != nil {
				return err
			}
			return printDryRun(e, plan)
		},
	}
	cf.add(cmd)
	ssh.add(cmd)
	addDryRunFlag(cmd, &dryRun)
	cmd.Flags().BoolVar(&force, "force", false, "remove even when the remaining members may lose quorum")
	return cmd
}

// printDryRun prints, after a dry run, what the command would have done
// per host.
func printDryRun(e *env, plan *workflow.Plan) error {
	if !plan.DryRun() {
		return nil
	}
	return plan.Print(e.stdout)
}

func newMemberReplaceCmd(e *env) *cobra.Command {
	return memberJoinCmd(e, &cobra.Command{
		Use:   "replace INVENTORY NAME",
		Short: "Replace member NAME with an empty data dir: remove it, add it back as a learner, promote",
		Long: "For a member whose disk died (its etcd exits 81: the cluster has it, its data dir is empty) or that\n" +
			"must start afresh. member replace removes NAME (refused when the other members could not keep\n" +
			"quorum, unless --force), stops it and moves its data dir aside (kept, named with the date), then\n" +
			"adds it back as a learner on its host and promotes it once it has caught up. Re-running resumes.",
		Example: "  etcd-installer member replace prod.toml etcd1 --dry-run\n  etcd-installer member replace prod.toml etcd1",
	}, member.Replace, "replace even when the other members could not keep quorum")
}
