package node

import (
	"context"
	"sync"
	"testing"
	"time"
)

// pings records when each ping came.
type pings struct {
	mu sync.Mutex
	at []time.Time
}

func (p *pings) ping() { p.mu.Lock(); p.at = append(p.at, time.Now()); p.mu.Unlock() }

// longestGap is the longest time without a ping in [from, to].
func (p *pings) longestGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	last, gap := from, time.Duration(0)
	for _, t := range append(append([]time.Time{}, p.at...), to) {
		if t.Before(from) || t.After(to) {
			continue
		}
		if t.Sub(last) > gap {
			gap = t.Sub(last)
		}
		last = t
	}
	return gap
}

// A check slowed by a loaded host (each success takes 2.5 ping intervals:
// a read waiting out its deadline, then metrics gathered) never leaves
// systemd a whole WatchdogSec without a ping (pinging after each check, as
// before, left 3 intervals: WatchdogSec, and systemd killed a member in the
// system test's defragmentation); a check that hangs
// stops the pings within WatchdogSec.
func TestPingWhileAlive(t *testing.T) {
	const watchdog = 600 * time.Millisecond
	var mu sync.Mutex
	mode := "slow"
	var lastSuccess time.Time
	check := func(ctx context.Context) error {
		mu.Lock()
		m := mode
		mu.Unlock()
		switch m {
		case "slow":
			time.Sleep(watchdog / 3 * 5 / 2) // far past its own deadline: still a success
			mu.Lock()
			lastSuccess = time.Now()
			mu.Unlock()
			return nil
		default:
			select {} // hung: never returns
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var p pings
	go pingWhileAlive(ctx, watchdog, check, p.ping, func(error) {})
	start := time.Now()
	time.Sleep(3 * time.Second)
	if gap := p.longestGap(start, time.Now()); gap >= watchdog {
		t.Errorf("a slow but succeeding check: %s without a ping (WatchdogSec %s)", gap, watchdog)
	}
	mu.Lock()
	mode = "hung"
	mu.Unlock()
	// A slow check begun before the switch still succeeds: the pings are
	// judged from the last success, whenever that was.
	time.Sleep(5 * watchdog)
	p.mu.Lock()
	last := p.at[len(p.at)-1]
	p.mu.Unlock()
	mu.Lock()
	ok := lastSuccess
	mu.Unlock()
	if last.Sub(ok) >= watchdog {
		t.Errorf("a hung check: pings went on %s after its last success (WatchdogSec %s)", last.Sub(ok), watchdog)
	}
	if since := time.Since(last); since < watchdog {
		t.Errorf("a hung check: still pinged %s ago", since)
	}
}
