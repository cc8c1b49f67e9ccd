package e2e

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Run prints and times named steps and remembers failures.
type Run struct {
	Out io.Writer
	// OnStep hears each step's name as it starts (the writer records it
	// with each operation, so a violation names its step).
	OnStep  func(name string)
	start   time.Time
	results []result
}

type result struct {
	name string
	took time.Duration
	err  error
}

// NewRun starts a run that reports to out.
func NewRun(out io.Writer) *Run { return &Run{Out: out, start: time.Now()} }

// Step runs f as a named step, prints its time and outcome, and returns
// its error.
func (r *Run) Step(name string, f func() error) error {
	fmt.Fprintf(r.Out, "--- %s\n", name)
	if r.OnStep != nil {
		r.OnStep(name)
	}
	start := time.Now()
	err := f()
	took := time.Since(start)
	r.results = append(r.results, result{name, took, err})
	if err != nil {
		fmt.Fprintf(r.Out, "FAIL %s (%s): %v\n", name, took.Round(10*time.Millisecond), err)
	} else {
		fmt.Fprintf(r.Out, "ok   %s (%s)\n", name, took.Round(10*time.Millisecond))
	}
	return err
}

// Logf prints a line within the current step.
func (r *Run) Logf(format string, args ...any) {
	fmt.Fprintf(r.Out, "     "+format+"\n", args...)
}

// Failed reports whether any step failed.
func (r *Run) Failed() bool {
	for _, res := range r.results {
		if res.err != nil {
			return true
		}
	}
	return false
}

// Summary prints every step's time and outcome.
func (r *Run) Summary() {
	fmt.Fprintf(r.Out, "\n%-70s %10s\n", "step", "time")
	for _, res := range r.results {
		mark := "ok"
		if res.err != nil {
			mark = "FAIL"
		}
		fmt.Fprintf(r.Out, "%-4s %-65s %10s\n", mark, truncate(res.name, 65), res.took.Round(10*time.Millisecond))
	}
	fmt.Fprintf(r.Out, "total %s\n", time.Since(r.start).Round(time.Second))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

// Eventually polls cond until it returns nil or d passes; it returns the
// last error.
func Eventually(ctx context.Context, d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", d, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// expect returns an error unless out contains want.
func expect(out, want, what string) error {
	if !strings.Contains(out, want) {
		return fmt.Errorf("%s: want %q in:\n%s", what, want, out)
	}
	return nil
}

// Always checks cond until d passes and returns its first error: what
// must stay true for a while (a unit that must not be restarted).
func Always(ctx context.Context, d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		if err := cond(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
