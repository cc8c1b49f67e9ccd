// Package progress reports a long operation (a snapshot streamed to a
// file, a restore) while it runs: on a terminal one line rewritten in
// place with size, rate and what is left; otherwise a timestamped line
// now and then, which logs and journals keep. The operation's own code
// stays unaware: progress polls a function that says how far it is.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"

	humanize "github.com/dustin/go-humanize"
)

// Reporter reports one operation until Stop.
type Reporter struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

// Options say how to report.
type Options struct {
	// TTY rewrites one line (every Every); otherwise a line every Every
	// with the time in front.
	TTY   bool
	Every time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Start reports what, whose size so far done() returns, of total bytes (0
// when unknown), to w until Stop.
func Start(w io.Writer, what string, total int64, done func() int64, o Options) *Reporter {
	if o.Every == 0 {
		o.Every = time.Second
		if !o.TTY {
			o.Every = 10 * time.Second
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Reporter{stop: make(chan struct{})}
	start := o.Now()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(o.Every)
		defer t.Stop()
		report := func(suffix string) {
			took := o.Now().Sub(start)
			line := Line(what, done(), total, took) + suffix
			if suffix != "" {
				line += " in " + took.Round(10*time.Millisecond).String()
			}
			if o.TTY {
				fmt.Fprintf(w, "\r%s\033[K", line)
			} else {
				fmt.Fprintf(w, "%s %s\n", o.Now().UTC().Format(time.RFC3339), line)
			}
		}
		for {
			select {
			case <-r.stop:
				// The last line says where it ended.
				report(", ended")
				if o.TTY {
					fmt.Fprintln(w)
				}
				return
			case <-t.C:
			}
			report("")
		}
	}()
	return r
}

// Stop ends the reports (and the terminal's line).
func (r *Reporter) Stop() {
	close(r.stop)
	r.wg.Wait()
}

// Line is one report: "snapshot: 412 MiB of 1.1 GiB (37%), 45 MiB/s,
// about 15s left".
func Line(what string, done, total int64, took time.Duration) string {
	rate := 0.0
	if took > 0 {
		rate = float64(done) / took.Seconds()
	}
	s := fmt.Sprintf("%s: %s", what, humanize.IBytes(uint64(max(done, 0))))
	if total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", humanize.IBytes(uint64(total)), min(done*100/total, 100))
	}
	s += fmt.Sprintf(", %s/s", humanize.IBytes(uint64(rate)))
	if total > 0 && rate > 0 && done < total {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		s += fmt.Sprintf(", about %s left", left.Round(time.Second))
	}
	return s
}

// To is where a command's reports go; no W: nowhere.
type To struct {
	W   io.Writer
	TTY bool
	// Every is how often (0: Start's default).
	Every time.Duration
}

// Start reports what until the returned stop (see the package's Start).
func (t To) Start(what string, total int64, done func() int64) (stop func()) {
	if t.W == nil {
		return func() {}
	}
	return Start(t.W, what, total, done, Options{TTY: t.TTY, Every: t.Every}).Stop
}
