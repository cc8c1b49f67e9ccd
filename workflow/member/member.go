package provision

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcd-appliance/appliance/installer"
)

// ErrQuorumRisk means a membership change could leave the cluster without
// quorum.
var ErrQuorumRisk = errors.New("membership change would risk quorum")

// MemberOptions tune MemberAdd and MemberRemove.
type MemberOptions struct {
	Dial func(endpoints []string) (Membership, error)
	// Wait bounds the new member's start and catch-up.
	Wait time.Duration
	// Force skips the quorum and health guards.
	Force bool
	Now   func() time.Time
	// Extra files for the new member's host: its certificates.
	Extra []installer.File
}

func (o MemberOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// othersOf returns the client URLs of every inventory member but name.
func othersOf(inv *installer.Inventory, name string) []string {
	var eps []string
	for i := range inv.Members {
		if inv.Members[i].Name != name {
			eps = append(eps, inv.ClientURL(&inv.Members[i]))
		}
	}
	return eps
}

// healthyVoting counts the voting members that answer a linearizable read,
// except skip, and names the others.
func healthyVoting(ctx context.Context, c Membership, members []Member, skip string) (voting, healthy int, down []string) {
	for _, m := range members {
		if m.Learner {
			continue
		}
		voting++
		if m.Name == skip {
			continue
		}
		ok := false
		for _, u := range m.ClientURLs {
			hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := c.Healthy(hctx, u)
			cancel()
			if err == nil {
				ok = true
				break
			}
		}
		if ok {
			healthy++
		} else {
			label := m.Name
			if label == "" {
				label = fmt.Sprintf("%x", m.ID)
			}
			down = append(down, label)
		}
	}
	return voting, healthy, down
}

// runningMembers connects to the members other than name and lists the
// cluster's members; the caller closes the connection.
func runningMembers(ctx context.Context, inv *installer.Inventory, name string, dial func([]string) (Membership, error)) (Membership, []Member, error) {
	c, err := dial(othersOf(inv, name))
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	members, err := c.Members(cctx)
	cancel()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("the running cluster does not answer: %w", err)
	}
	return c, members, nil
}

// MemberAdd adds the inventory member name to the running cluster: as a
// learner first, then its host is applied with initial-cluster-state
// "existing", and once it has caught up it is promoted. Re-running it
// resumes where it stopped.
func MemberAdd(ctx context.Context, inv *installer.Inventory, name string, t Target, o MemberOptions, log logrus.FieldLogger) error {
	log = log.WithField("member", name)
	m, ok := inv.Member(name)
	if !ok {
		return fmt.Errorf("%s is not a member in %s: add its [[member]] table first", name, inv.Source)
	}
	c, members, err := runningMembers(ctx, inv, name, o.Dial)
	if err != nil {
		return err
	}
	defer c.Close()
	peerURL := inv.PeerURL(m)
	var joining *Member
	for i := range members {
		mm := &members[i]
		if mm.Name == name || contains(mm.PeerURLs, peerURL) {
			joining = mm
		}
	}
	if joining != nil && !joining.Learner {
		log.Info("already a voting member; applying its host only")
		_, err := Apply(ctx, inv, t, ApplyOptions{Dial: o.Dial, Extra: o.Extra}, log)
		return err
	}
	voting, healthy, down := healthyVoting(ctx, c, members, "")
	if !o.Force && healthy < voting {
		return fmt.Errorf("%w: %d of %d voting members are healthy (unhealthy: %s); a new voting member raises the quorum, "+
			"so fix the cluster first or pass --force", ErrQuorumRisk, healthy, voting, strings.Join(down, ", "))
	}
	if joining == nil {
		log.WithField("peer-url", peerURL).Infof("adding as a learner: the cluster goes from %d to %d voting members once it is promoted%s",
			voting, voting+1, evenNote(voting+1))
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		added, err := c.AddLearner(actx, []string{peerURL})
		cancel()
		if err != nil {
			return err
		}
		joining = &added
		members = append(members, added)
	} else {
		log.Info("already added as a learner; resuming")
	}

	names := []string{name}
	for _, mm := range members {
		if mm.Name != "" && mm.Name != name {
			names = append(names, mm.Name)
		}
	}
	if _, err := Apply(ctx, inv, t, ApplyOptions{Dial: o.Dial, Extra: o.Extra, Member: installer.MemberOptions{State: "existing", InitialCluster: names}}, log); err != nil {
		return fmt.Errorf("applying %s: %w (the learner stays in the cluster; fix and re-run member add to resume)", name, err)
	}
	if _, err := WaitReady(ctx, t, o.Wait, log); err != nil {
		return fmt.Errorf("%w (the learner stays in the cluster; fix and re-run member add to resume)", err)
	}

	deadline := time.Now().Add(o.Wait)
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := c.Promote(pctx, joining.ID)
		cancel()
		// An earlier attempt that timed out may have been applied.
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
			break
		}
		// etcd promotes a learner only once it has caught up with the
		// leader; a leader change mid-request is worth another try too.
		if !retryablePromote(err) {
			return fmt.Errorf("promoting %s: %w", name, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("promoting %s: not promoted after %s: %w (re-run member add to resume)", name, o.Wait, err)
		}
		log.Debug("learner catching up")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	log.Infof("promoted: the cluster has %d voting members%s", voting+1, evenNote(voting+1))
	return nil
}

func retryablePromote(err error) bool {
	for _, e := range []error{rpctypes.ErrMemberLearnerNotReady, rpctypes.ErrUnhealthy, rpctypes.ErrTimeout,
		rpctypes.ErrLeaderChanged, rpctypes.ErrNoLeader, rpctypes.ErrNotLeader} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func evenNote(n int) string {
	if n%2 == 0 {
		return fmt.Sprintf(" (an even count: it tolerates %d failure(s), like %d members; add or remove one more)", (n-1)/2, n-1)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// MemberRemove removes the member name from the cluster, then stops and
// disables it on its host and moves its data dir aside (kept, named with
// the date) so the host can join again later. t may be nil when the host
// is gone for good.
func MemberRemove(ctx context.Context, inv *installer.Inventory, name string, t *Target, o MemberOptions, log logrus.FieldLogger) error {
	log = log.WithField("member", name)
	c, members, err := runningMembers(ctx, inv, name, o.Dial)
	if err != nil {
		return err
	}
	defer c.Close()
	var target *Member
	for i := range members {
		if members[i].Name == name {
			target = &members[i]
		}
	}
	if target == nil {
		log.Info("not a member of the running cluster (already removed?); cleaning up its host only")
	} else {
		voting, healthy, down := healthyVoting(ctx, c, members, name)
		remaining := voting
		if !target.Learner {
			remaining--
		}
		quorum := remaining/2 + 1
		if !o.Force && healthy < quorum {
			return fmt.Errorf("%w: after removing %s, %d of %d remaining voting members would be healthy and quorum is %d (unhealthy: %s); "+
				"fix them first or pass --force", ErrQuorumRisk, name, healthy, remaining, quorum, strings.Join(down, ", "))
		}
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := c.Remove(rctx, target.ID)
		cancel()
		if err != nil {
			return fmt.Errorf("removing %s: %w", name, err)
		}
		log.Infof("removed: the cluster has %d voting members%s", remaining, evenNote(remaining))
	}
	if t == nil {
		return nil
	}
	unit := t.Unit()
	var errs []error
	if err := t.Services.Stop(ctx, unit); err != nil {
		errs = append(errs, fmt.Errorf("stopping %s: %w", unit, err))
	}
	if err := t.Services.Disable(ctx, unit); err != nil {
		errs = append(errs, fmt.Errorf("disabling %s: %w", unit, err))
	}
	m, _ := inv.Member(name)
	if m != nil {
		dir := inv.DataDir(m)
		if _, err := t.FS.Stat(dir); err == nil {
			aside := fmt.Sprintf("%s.removed-%s", dir, o.now().Format("20060102-150405"))
			if err := t.FS.Rename(dir, aside); err != nil {
				errs = append(errs, fmt.Errorf("moving %s aside: %w", dir, err))
			} else {
				log.WithField("kept", aside).Info("moved the data dir aside")
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s left the cluster, but its host is not cleaned up: %w; "+
			"on the host: systemctl disable --now %s and move its data dir aside", name, err, unit)
	}
	return nil
}
