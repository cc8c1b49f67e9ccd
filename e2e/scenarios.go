package e2e

import (
	"fmt"
	"time"
)

// scenario is one step of the cluster suite.
type scenario struct {
	name string
	// fault steps start from a healthy cluster: a step that failed must
	// not make the next one fail.
	fault bool
	// stop ends the suite when the step fails: the steps after it need
	// what it makes (certificates, a cluster, the writer).
	stop bool
	run  func() error
}

// scenarios is the cluster suite in order: provisioning
// (scenarios_provision.go), faults under the writer (scenarios_faults.go),
// day-2 operations (scenarios_day2.go), then what comes after the writer
// (scenarios_final.go).
func (c *ClusterTest) scenarios() []scenario {
	return []scenario{
		{"etcd-installer certs on control: a CA and every host's certificates", false, true, c.issueCerts},
		{"1. etcd-installer apply over SSH from control; healthy three-member cluster", false, true, c.applyOverSSH},
		{"1. systemctl status shows our STATUS on every host; journald has the logs", false, false, c.unitStatus},
		{"1. apply again from control: nothing changes, nothing restarts", false, false, c.applyAgain},
		{"TLS and auth: certificates in place, clients without one refused, auth on, etcdctl works on hosts without flags", false, false, c.security},
		{"start the writer on control (through every fault below)", false, true, c.startWriter},
		{"2. kill -9 of etcd on the leader's host: systemd restarts it, it rejoins", true, false, c.killLeader},
		{"3. power cut of one host: the other two keep writing; back, it catches up", true, false, c.powerCutOne},
		{"4. two hosts down: writes fail with a clear error, serializable reads answer; both back: recovery", true, false, c.quorumLoss},
		{"5. all three power-cut, started again in reverse order: the cluster recovers by itself", true, false, c.powerCutAll},
		{"6. leader's link down: a new leader on the majority side; link up: it rejoins", true, false, c.leaderLinkDown},
		{"6. leader silently cut off (frames dropped, link up): new leader; healed: it rejoins", true, false, c.leaderSilentCut},
		{"6. one-pair drop between the leader and a follower: writes go on; healed: all healthy", true, false, c.onePairDrop},
		{"certs renew on control, apply: every host gets new certificates, nothing restarts, members serve the new ones", true, false, c.renewCerts},
		{"a tuning change from control: plan --host matches apply --host --dry-run, --this-host refused, control untouched; applied, members restart one at a time, the leader last; no failed write", true, false, c.rollingTuning},
		{"7. member remove etcd2, then member add back: learner, promoted", true, false, c.memberRemoveAdd},
		{"7b. etcd1's disk dies (powered off, data dir gone, back): etcd exits 81, not restarted, doctor names it; member replace puts it back under the writer", true, false, c.lostDisk},
		{"8. upgrade to revision 2 on all three hosts at the same moment (dpkg -i): the package restarts them one at a time, never two together; apply confirms each; an application's client fails no write, the pinned clients' failures counted", true, false, c.simultaneousUpgrade},
		{"8b. with etcd2 powered off, the package on etcd1 does not restart it (quorum): the old process serves on, dpkg says why and what to run", true, false, c.upgradeWithoutQuorum},
		{"9. dpkg -r etcd keeps the data dir; reinstalled and applied, the member rejoins with its data", true, false, c.packageRemoval},
		{"the clients' history through every step above is linearizable; every watcher saw the cluster's history; no acknowledged write lost", false, false, c.noWriteLost},
		{"a gRPC proxy on control under systemd: certs, apply --host; READY, our STATUS, clients through it with TLS and auth", true, false, c.proxyOnControl},
		{"scheduled backups: [backup] in the inventory, apply; the timer fires every 10 s, the leader alone backs up, each verified, the retention keeps 2; copied over SSH to a user of control (its retention too); backup list; the metric; schedule removed: timers stopped; the newest copy checks out for restore", false, false, c.scheduledBackups},
		{"backup on control, restore over the running cluster (real hosts, SSH, systemd): the backup's keys, later keys gone", true, false, c.backupRestore},
		{"after the restore: clients and watchers again on the restored cluster, their history checked", true, false, c.afterRestore},
		{"the appliance maintains itself under a writer: [maintenance] every 20 s, quota 768MiB; 420 MiB written, 100 MiB deleted and compacted: each host's timer restarts its own member (defragmented at start), the leader's after the followers, no failed write; maintenance --all online: a member at WatchdogSec=1s survives a longer defragmentation, leadership never on the member being defragmented; filled to NOSPACE, the fill deleted: the timer compacts, defragments, disarms", true, false, c.maintenance},
		{"observability: Debian's Prometheus on control with the rendered configuration and alert rules scrapes the three members over TLS; every dashboard query has data and selects only exported metrics; a member stopped: EtcdMemberDown pending, firing after its for:, Debian's Alertmanager notifies a webhook with the runbook, EtcdQuorumAtRisk pending; back: resolved, the resolution notified", true, false, c.observability},
	}
}

// Scenarios runs the cluster suite.
func (c *ClusterTest) Scenarios() {
	for _, s := range c.scenarios() {
		run := s.run
		if s.fault {
			run = func() error {
				if err := c.health(90 * time.Second); err != nil {
					return fmt.Errorf("not healthy before the step: %w", err)
				}
				return s.run()
			}
		}
		if c.R.Step(s.name, run) != nil && s.stop {
			return
		}
	}
}
