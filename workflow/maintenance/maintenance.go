// Package maintenance keeps a cluster's backends compact and gets it out
// of the space alarm on its own. etcd never gives freed pages back to the
// filesystem: a backend that once held much is mostly free pages until it
// is defragmented, and the quota counts the whole file. Defragmenting a
// member stops its reads and writes for the whole run, so it is done one
// member at a time under the cluster's maintenance lock (the one package
// upgrades take), never while a member is unhealthy, followers first, and
// the leader only after it has handed its leadership to a follower.
// When NOSPACE is raised, the key space is compacted to its current
// revision, every member is defragmented, and the alarm is disarmed when
// that freed enough; otherwise it stays raised and the error says which
// prefixes hold the space and which quota to raise.
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	humanize "github.com/dustin/go-humanize"
	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/cluster"
	"github.com/etcd-appliance/appliance/workflow"
)

// ErrUnhealthy means a member is not healthy (or a CORRUPT alarm is
// raised): nothing is defragmented then, since a member blocked by its
// defragmentation would be one more member not serving.
var ErrUnhealthy = errors.New("not every member is healthy")

// ErrNoSpace means the NOSPACE alarm stays raised: after compaction and
// defragmentation the data in use is still near the quota.
var ErrNoSpace = errors.New("the space alarm stays raised")

// Defaults of a scheduled run's threshold: a backend half free pages, and
// at least this much of them (below it, defragmenting gains little).
const (
	DefaultFreePercent = 50
	DefaultMinFree     = 100 << 20
)

// disarmBelow is the share of the quota under which a member's backend
// must be after the recovery for NOSPACE to be disarmed: above it, writes
// would raise the alarm again within minutes.
const disarmBelow = 0.8

// Options say which members to defragment and how.
type Options struct {
	// Self is the member a scheduled run is on (Scheduled); Run does its
	// work only on the leader's host, so that the timers of every member
	// firing together under NOSPACE do it once. Empty for an operator's
	// run.
	Self string
	// A member is defragmented when at least FreePercent of its backend
	// and at least MinFree bytes are free pages; All defragments every
	// member.
	FreePercent int
	MinFree     int64
	All         bool
	// Lock takes the maintenance lock; Holder says who waits and why.
	Lock     cluster.Locker
	Holder   string
	LockWait time.Duration
	// DefragTimeout bounds one member's defragmentation.
	DefragTimeout time.Duration
	// LeaderWait bounds how long a scheduled run on the leader's host
	// lets fragmented followers go first; Poll is how often it looks.
	LeaderWait, Poll time.Duration
	// RaiseQuota says how this cluster's quota is raised, for the message
	// when NOSPACE cannot be cleared.
	RaiseQuota string
	Plan       *workflow.Plan
}

func (o *Options) defaults() {
	if o.FreePercent == 0 {
		o.FreePercent = DefaultFreePercent
	}
	if o.MinFree == 0 {
		o.MinFree = DefaultMinFree
	}
	if o.LockWait == 0 {
		o.LockWait = 20 * time.Minute
	}
	if o.DefragTimeout == 0 {
		o.DefragTimeout = time.Hour
	}
	if o.LeaderWait == 0 {
		o.LeaderWait = 30 * time.Minute
	}
	if o.Poll == 0 {
		o.Poll = 5 * time.Second
	}
	if o.RaiseQuota == "" {
		o.RaiseQuota = "raise the quota (cluster.quota_backend in the inventory, at most 8GiB) and apply"
	}
}

// Defrag is one member's defragmentation.
type Defrag struct {
	Name string
	// Before and After are its backend's size; InUse the data in it.
	Before, After, InUse int64
	Took                 time.Duration
	// LeaderTo is the member leadership was handed to first ("" when this
	// one did not lead).
	LeaderTo string
}

// Result says what a run did.
type Result struct {
	// Skipped says why this member did nothing (not the leader).
	Skipped string
	// NoSpace: the alarm was raised; Compacted the revision the key space
	// was compacted to; Disarmed: the alarm was cleared.
	NoSpace   bool
	Compacted int64
	Disarmed  bool
	// Defragmented lists the members defragmented, in order.
	Defragmented []Defrag
	// Fine lists the members left alone, with their fragmentation.
	Fine []string
}

// Row is one member as the run sees it.
type Row struct {
	cluster.EndpointStatus
	Name    string
	Healthy error
}

// Fragmented reports whether a member's free pages pass the threshold.
func Fragmented(r Row, freePercent int, minFree int64) bool {
	free := r.DBSize - r.DBSizeInUse
	return r.DBSize > 0 && free >= minFree && free*100 >= int64(freePercent)*r.DBSize
}

// Order is the order members are defragmented in: followers (by name),
// then the leader, which hands its leadership away first.
func Order(rows []Row, leader uint64) []string {
	var names []string
	var last string
	for _, r := range rows {
		if r.ID == leader {
			last = r.Name
			continue
		}
		names = append(names, r.Name)
	}
	sort.Strings(names)
	if last != "" {
		names = append(names, last)
	}
	return names
}

// Run does one maintenance run.
func Run(ctx context.Context, c *cluster.Client, o Options, log logrus.FieldLogger) (Result, error) {
	o.defaults()
	var res Result
	if o.Self != "" {
		_, skip, err := cluster.LeaderSelf(ctx, c, o.Self, "does the maintenance")
		if err != nil {
			return res, err
		}
		if skip != "" {
			res.Skipped = skip
			return res, nil
		}
	}
	rows, leader, err := survey(ctx, c)
	if err != nil {
		return res, err
	}
	alarms, err := listAlarms(ctx, c)
	if err != nil {
		return res, err
	}
	for _, a := range alarms {
		switch a.Kind {
		case "NOSPACE":
			res.NoSpace = true
		case "CORRUPT":
			return res, fmt.Errorf("%w: alarm CORRUPT is raised (member %x): a member's data differs from the others'; find it (etcdctl endpoint hashkv --cluster) and replace it (etcd-installer member replace INVENTORY NAME) before any maintenance", ErrUnhealthy, a.Member)
		}
	}
	if res.NoSpace {
		// Raised earlier and no longer true (the quota was raised, or the
		// members were defragmented since): disarming is all it takes.
		if full := overQuota(rows); len(full) == 0 {
			log.Warn("alarm NOSPACE is raised but every member's backend is below ", int(disarmBelow*100), "% of its quota: disarming it, nothing else")
			return res, disarm(ctx, c, o, &res, log)
		}
	}
	var todo []string
	for _, name := range Order(rows, leader) {
		r := rowOf(rows, name)
		if res.NoSpace || o.All || Fragmented(r, o.FreePercent, o.MinFree) {
			todo = append(todo, name)
			continue
		}
		res.Fine = append(res.Fine, describe(r))
	}
	if res.NoSpace {
		log.Warn("alarm NOSPACE is raised (the cluster refuses writes): compacting to the current revision, defragmenting every member, then disarming if that freed enough")
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rev, err := c.Revision(rctx)
		cancel()
		if err != nil {
			return res, fmt.Errorf("reading the current revision: %w", err)
		}
		if err := o.Plan.Do("cluster", fmt.Sprintf("compact the key space to its current revision %d (the keys stay; their history goes)", rev), func() error {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			if err := c.Compact(cctx, rev); err != nil && !strings.Contains(err.Error(), "compacted") {
				return fmt.Errorf("compacting to revision %d: %w", rev, err)
			}
			log.WithField("revision", rev).Info("compacted")
			return nil
		}); err != nil {
			return res, err
		}
		res.Compacted = rev
	}
	if len(todo) == 0 {
		log.WithField("members", strings.Join(res.Fine, "; ")).Info("no member needs defragmenting")
		return res, nil
	}
	for _, name := range todo {
		d, done, err := defragment(ctx, c, name, o, res.NoSpace, log)
		if err != nil {
			return res, err
		}
		if done {
			res.Defragmented = append(res.Defragmented, d)
		}
	}
	if !res.NoSpace || o.Plan.DryRun() {
		return res, nil
	}
	rows, _, err = survey(ctx, c)
	if err != nil {
		return res, err
	}
	if full := overQuota(rows); len(full) > 0 {
		return res, fmt.Errorf("%w: after compaction to revision %d and defragmentation of every member, %s (%d%% or more): disarming would only have writes raise it again. "+
			"The keys themselves fill it; %s. Delete what is not needed (etcdctl del --prefix PREFIX) or %s; then run this again",
			ErrNoSpace, res.Compacted, strings.Join(full, ", "), int(disarmBelow*100), largest(ctx, c), o.RaiseQuota)
	}
	return res, disarm(ctx, c, o, &res, log)
}

// overQuota says which members' backends are at or above disarmBelow of
// their quota.
func overQuota(rows []Row) []string {
	var full []string
	for _, r := range rows {
		quota := r.DBSizeQuota
		if quota <= 0 {
			quota = 2 << 30
		}
		if float64(r.DBSize) >= disarmBelow*float64(quota) {
			full = append(full, fmt.Sprintf("%s holds %s of its %s quota", r.Name, humanize.IBytes(uint64(r.DBSize)), humanize.IBytes(uint64(quota))))
		}
	}
	return full
}

func disarm(ctx context.Context, c *cluster.Client, o Options, res *Result, log logrus.FieldLogger) error {
	if err := o.Plan.Do("cluster", "disarm NOSPACE", func() error {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return c.DisarmNoSpace(dctx)
	}); err != nil {
		return err
	}
	res.Disarmed = !o.Plan.DryRun()
	if res.Disarmed {
		log.Info("alarm NOSPACE disarmed: the cluster takes writes again")
	}
	return nil
}

func listAlarms(ctx context.Context, c *cluster.Client) ([]cluster.Alarm, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	alarms, err := c.Alarms(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing alarms: %w", err)
	}
	return alarms, nil
}

func rowOf(rows []Row, name string) Row {
	for _, r := range rows {
		if r.Name == name {
			return r
		}
	}
	return Row{Name: name}
}

func describe(r Row) string {
	free := r.DBSize - r.DBSizeInUse
	pct := int64(0)
	if r.DBSize > 0 {
		pct = free * 100 / r.DBSize
	}
	return fmt.Sprintf("%s: %s backend, %d%% free (%s in use)", r.Name, humanize.IBytes(uint64(r.DBSize)), pct, humanize.IBytes(uint64(r.DBSizeInUse)))
}

// survey reads every member's status and health; any member not healthy,
// or no leader, is ErrUnhealthy.
func survey(ctx context.Context, c *cluster.Client) ([]Row, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	members, err := c.Members(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("the cluster does not answer: %w", err)
	}
	var rows []Row
	var bad []string
	var leader uint64
	for _, m := range members {
		r := Row{Name: m.Name}
		if len(m.ClientURLs) == 0 {
			bad = append(bad, fmt.Sprintf("%s has not started", m.Name))
			rows = append(rows, r)
			continue
		}
		r.EndpointStatus = c.Status(ctx, m.ClientURLs[0])
		switch {
		case r.Err != nil:
			bad = append(bad, fmt.Sprintf("%s does not answer (%v)", m.Name, r.Err))
		default:
			if r.Healthy = c.Healthy(ctx, m.ClientURLs[0]); r.Healthy != nil {
				bad = append(bad, fmt.Sprintf("%s does not serve a read (%v)", m.Name, r.Healthy))
			}
			if r.Leader != 0 {
				leader = r.Leader
			}
		}
		rows = append(rows, r)
	}
	if len(bad) == 0 && leader == 0 {
		bad = append(bad, "the cluster has no leader")
	}
	if len(bad) > 0 {
		return rows, leader, fmt.Errorf("%w: %s; nothing was defragmented (etcd-installer status INVENTORY says more)", ErrUnhealthy, strings.Join(bad, "; "))
	}
	return rows, leader, nil
}

// defragment defragments one member under the maintenance lock, after
// moving leadership away from it. done is false when it no longer needed
// it (another run got there first).
func defragment(ctx context.Context, c *cluster.Client, name string, o Options, nospace bool, log logrus.FieldLogger) (d Defrag, done bool, err error) {
	d.Name = name
	log = log.WithField("member", name)
	locked := o.Lock != nil && !nospace && !o.Plan.DryRun()
	if locked {
		// The lock lives on a lease kept alive through the other members:
		// this one stops answering while it is defragmented. (Under
		// NOSPACE etcd grants no lease, so the lock cannot be taken; no
		// package upgrade can take it either.)
		rows, _, err := survey(ctx, c)
		if err != nil {
			return d, false, err
		}
		var others []string
		for _, r := range rows {
			if r.Name != name {
				others = append(others, r.Endpoint)
			}
		}
		held, err := o.Lock(ctx, others, o.Holder+": defragmentation of "+name, o.LockWait, func(h string) {
			log.WithField("holder", h).Info("waiting for the maintenance lock")
		})
		if err != nil {
			return d, false, fmt.Errorf("defragmenting %s: %w", name, err)
		}
		defer func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if rerr := held.Release(rctx); rerr != nil {
				log.WithError(rerr).Warn("releasing the maintenance lock (its lease frees it within 30 s)")
			}
		}()
		defer func() {
			// Checked after the work too: a lock lost midway means another
			// host may have disrupted its member meanwhile.
			if err == nil {
				if cerr := held.Check(ctx); cerr != nil {
					log.WithError(cerr).Warn("the maintenance lock was lost while defragmenting")
				}
			}
		}()
	}
	// Fresh, under the lock: the cluster may have changed while waiting.
	rows, leader, err := survey(ctx, c)
	if err != nil {
		return d, false, err
	}
	r := rowOf(rows, name)
	d.Before, d.InUse = r.DBSize, r.DBSizeInUse
	if !nospace && !o.All && !Fragmented(r, o.FreePercent, o.MinFree) {
		log.WithField("now", describe(r)).Info("no longer needs defragmenting")
		return d, false, nil
	}
	if r.ID == leader && voters(rows) > 1 {
		to, ok := successor(rows, name)
		if !ok {
			return d, false, fmt.Errorf("%w: %s leads and no other voting member is healthy to take over; nothing was defragmented", ErrUnhealthy, name)
		}
		d.LeaderTo = to.Name
		if err := o.Plan.Do(name, fmt.Sprintf("move leadership from %s to %s", name, to.Name), func() error {
			return moveLeader(ctx, c, r, to, log)
		}); err != nil {
			return d, false, err
		}
	}
	err = o.Plan.Do(name, "defragment "+describe(r), func() error {
		start := time.Now()
		stop := ticking(log, start, r)
		dctx, cancel := context.WithTimeout(ctx, o.DefragTimeout)
		err := c.Defragment(dctx, r.Endpoint)
		cancel()
		stop()
		d.Took = time.Since(start)
		if err != nil {
			// A defragmentation goes on in etcd after its client gave up:
			// the lock is held until the member answers again, so that no
			// other member is disrupted meanwhile.
			if werr := answering(ctx, c, r.Endpoint, o.DefragTimeout, locked, log); werr != nil {
				log.WithError(werr).Warn("the member still does not answer; the lock is released anyway")
			}
			return fmt.Errorf("defragmenting %s: %w", name, err)
		}
		// It serves again before the next one starts.
		if err := serving(ctx, c, r.Endpoint, time.Minute); err != nil {
			return fmt.Errorf("%s after its defragmentation: %w", name, err)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		after := c.Status(sctx, r.Endpoint)
		cancel()
		d.After = after.DBSize
		log.WithFields(logrus.Fields{"before": humanize.IBytes(uint64(d.Before)), "after": humanize.IBytes(uint64(d.After)),
			"took": d.Took.Round(time.Millisecond)}).Info("defragmented")
		return nil
	})
	return d, err == nil && !o.Plan.DryRun(), err
}

func voters(rows []Row) int {
	n := 0
	for _, r := range rows {
		if !r.Learner {
			n++
		}
	}
	return n
}

// successor is the healthy voting member, other than name, that is
// furthest along the log: it can lead at once.
func successor(rows []Row, name string) (Row, bool) {
	var best Row
	found := false
	for _, r := range rows {
		if r.Name == name || r.Learner || r.Err != nil || r.Healthy != nil {
			continue
		}
		if !found || r.RaftIndex > best.RaftIndex {
			best, found = r, true
		}
	}
	return best, found
}

func moveLeader(ctx context.Context, c *cluster.Client, from, to Row, log logrus.FieldLogger) error {
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.MoveLeader(mctx, from.Endpoint, to.ID); err != nil {
		return fmt.Errorf("moving leadership from %s to %s: %w", from.Name, to.Name, err)
	}
	for {
		st := c.Status(mctx, from.Endpoint)
		if st.Err == nil && st.Leader != 0 && st.Leader != from.ID {
			log.WithField("to", to.Name).Info("leadership moved")
			return nil
		}
		select {
		case <-mctx.Done():
			return fmt.Errorf("leadership did not leave %s within 30 s: %w", from.Name, mctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// answering waits, up to wait, until the member at endpoint answers a
// status request (it does not while it defragments).
func answering(ctx context.Context, c *cluster.Client, endpoint string, wait time.Duration, locked bool, log logrus.FieldLogger) error {
	deadline := time.Now().Add(wait)
	if locked {
		log.Info("waiting for the member to answer again before the maintenance lock is released")
	} else {
		log.Info("waiting for the member to answer again before the next one is defragmented")
	}
	for {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		st := c.Status(sctx, endpoint)
		cancel()
		if st.Err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after %s: %w", wait, st.Err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func serving(ctx context.Context, c *cluster.Client, endpoint string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Healthy(hctx, endpoint)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after %s: %w", wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ticking logs every 10 s while a defragmentation runs: etcd reports no
// progress of its own, and a silent hour looks like a hang.
func ticking(log logrus.FieldLogger, start time.Time, r Row) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				log.WithFields(logrus.Fields{"elapsed": time.Since(start).Round(time.Second), "backend": humanize.IBytes(uint64(r.DBSize)),
					"in_use": humanize.IBytes(uint64(r.DBSizeInUse))}).Info("still defragmenting (the member serves nothing until it ends)")
			}
		}
	}()
	return func() { close(done) }
}

// largest names the prefixes holding the most data (keys and values), so
// that the NOSPACE message says what to delete. It reads in small pages
// and gives up after a minute, saying so.
func largest(ctx context.Context, c *cluster.Client) string {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	sizes, partial, err := c.PrefixSizes(ctx)
	if err != nil && len(sizes) == 0 {
		return fmt.Sprintf("the largest prefixes could not be read (%v)", err)
	}
	slices.SortFunc(sizes, func(a, b cluster.PrefixSize) int { return int(b.Bytes - a.Bytes) })
	var parts []string
	for i, s := range sizes {
		if i == 5 {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d keys)", s.Prefix, humanize.IBytes(uint64(s.Bytes)), s.Keys))
	}
	if len(parts) == 0 {
		return "the key space is empty"
	}
	out := "the largest prefixes: " + strings.Join(parts, ", ")
	if partial {
		out += " (of the keys read within a minute)"
	}
	return out
}
