// Package lincheck checks what the system test's clients saw against what
// etcd promises: every put, linearizable get and compare-and-swap forms a
// linearizable history per key (checked with porcupine), and every watch
// stream is the cluster's own history, in order, with nothing missing or
// repeated, holding every acknowledged write.
//
// An operation whose outcome the client could not know (a timeout, a lost
// connection) is recorded as unknown, never as a failure. Every write
// carries a value no other write has, so the cluster's final history says
// whether an unknown write took effect: one that did stays in the history
// with no known end (it may have taken effect at any time after its call),
// one that did not is dropped. That keeps the search small where faults
// leave many writes unknown.
package lincheck

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kinds of operation.
const (
	Put = "put"
	Get = "get"
	CAS = "cas"
)

// Op is one client operation, as the client saw it.
type Op struct {
	Client int    `json:"c"`
	Kind   string `json:"k"`
	Key    string `json:"key"`
	// Value is what a put or a compare-and-swap writes.
	Value string `json:"v,omitempty"`
	// Expect is the value a compare-and-swap compares with; with
	// ExpectAbsent it requires the key not to exist.
	Expect       string `json:"e,omitempty"`
	ExpectAbsent bool   `json:"ea,omitempty"`
	// Call and Return are nanoseconds on the client's clock (one process:
	// one clock for every client).
	Call   int64 `json:"call"`
	Return int64 `json:"ret,omitempty"`
	// Unknown: the client does not know whether it took effect.
	Unknown bool `json:"unknown,omitempty"`
	// Outputs: a get's value (Found false: no such key), whether a
	// compare-and-swap succeeded.
	Found bool   `json:"found,omitempty"`
	Got   string `json:"got,omitempty"`
	OK    bool   `json:"ok,omitempty"`
	// Step is the system test's step when the operation was called.
	Step string `json:"step,omitempty"`
	// Err, Peer and Took say why an unknown operation failed, which
	// member it went to and how long it waited (for the report; the
	// checker ignores them).
	Err  string `json:"err,omitempty"`
	Peer string `json:"peer,omitempty"`
	Took int64  `json:"took,omitempty"`
}

// Acknowledged reports whether the cluster told the client that its write
// took effect.
func (o Op) Acknowledged() bool {
	return !o.Unknown && (o.Kind == Put || (o.Kind == CAS && o.OK))
}

// Event is one event of a watch stream, or of the cluster's history.
type Event struct {
	Key    string `json:"key"`
	Value  string `json:"v,omitempty"`
	Rev    int64  `json:"rev"`
	Delete bool   `json:"del,omitempty"`
}

// state is one key's value in the model.
type state struct {
	found bool
	value string
}

type output struct {
	found bool
	got   string
	ok    bool
	// unknown: any outcome of the operation is allowed.
	unknown bool
}

// model is a single etcd key under put, get and compare-and-swap:
// partitioned by key, so each partition's state is one value.
var model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Op).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return state{} },
	Step: func(s, in, out any) (bool, any) {
		st, op, o := s.(state), in.(Op), out.(output)
		switch op.Kind {
		case Put:
			return true, state{true, op.Value}
		case Get:
			return o.found == st.found && (!o.found || o.got == st.value), st
		case CAS:
			holds := st.found == !op.ExpectAbsent && (op.ExpectAbsent || st.value == op.Expect)
			switch {
			case o.unknown && holds:
				return true, state{true, op.Value}
			case o.unknown:
				return true, st
			case holds:
				return o.ok, state{true, op.Value}
			default:
				return !o.ok, st
			}
		}
		return false, st
	},
	DescribeOperation: func(in, out any) string {
		op, o := in.(Op), out.(output)
		switch op.Kind {
		case Put:
			return fmt.Sprintf("put(%s, %s)", op.Key, op.Value)
		case Get:
			if !o.found {
				return fmt.Sprintf("get(%s) -> none", op.Key)
			}
			return fmt.Sprintf("get(%s) -> %s", op.Key, o.got)
		}
		exp := op.Expect
		if op.ExpectAbsent {
			exp = "none"
		}
		res := fmt.Sprint(o.ok)
		if o.unknown {
			res = "unknown"
		}
		return fmt.Sprintf("cas(%s, %s -> %s) -> %s", op.Key, exp, op.Value, res)
	},
	DescribeState: func(s any) string {
		if st := s.(state); st.found {
			return st.value
		}
		return "none"
	},
	DescribeOperationMetadata: func(m any) string {
		if s, _ := m.(string); s != "" {
			return "step: " + s
		}
		return ""
	},
}

// Result is what Check found.
type Result struct {
	// Ops were checked; Unknown of them had an unknown outcome and took
	// effect (kept open-ended); Dropped had an unknown outcome and never
	// took effect (or were reads that failed).
	Ops, Unknown, Dropped int
	Took                  time.Duration
	// Violations name each key whose history is not linearizable, with
	// the step of the first operation that could not be placed.
	Violations []string
}

// ErrNotLinearizable means a key's history has no linearization.
var ErrNotLinearizable = errors.New("history is not linearizable")

// ErrCheckTimeout means the checker gave up before it could decide.
var ErrCheckTimeout = errors.New("linearizability check timed out")

// Check checks ops, the whole run's operations, against final, the
// cluster's history of the same keys. On a violation it writes porcupine's
// visualization of the offending keys to vizPath (when given).
func Check(ops []Op, final []Event, timeout time.Duration, vizPath string) (Result, error) {
	written := map[string]bool{}
	for _, e := range final {
		if !e.Delete {
			written[e.Key+"\x00"+e.Value] = true
		}
	}
	var res Result
	var history []porcupine.Operation
	for _, op := range ops {
		o := output{found: op.Found, got: op.Got, ok: op.OK}
		ret := op.Return
		if op.Unknown {
			if op.Kind == Get || !written[op.Key+"\x00"+op.Value] {
				res.Dropped++
				continue
			}
			// It took effect, at some time after its call.
			res.Unknown++
			o = output{unknown: true}
			ret = math.MaxInt64 - 1
			if op.Kind == CAS {
				o = output{ok: true}
			}
		}
		history = append(history, porcupine.Operation{ClientId: op.Client, Input: op, Output: o, Call: op.Call, Return: ret, Metadata: op.Step})
	}
	res.Ops = len(history)
	start := time.Now()
	result, info := porcupine.CheckOperationsVerbose(model, history, timeout)
	res.Took = time.Since(start)
	switch result {
	case porcupine.Ok:
		return res, nil
	case porcupine.Unknown:
		return res, fmt.Errorf("%w after %s (%d operations)", ErrCheckTimeout, timeout, res.Ops)
	}
	res.Violations = violations(history, info)
	if vizPath != "" {
		if err := porcupine.VisualizePath(model, info, vizPath); err != nil {
			return res, fmt.Errorf("%w: %s; writing the visualization: %v", ErrNotLinearizable, strings.Join(res.Violations, "; "), err)
		}
	}
	return res, fmt.Errorf("%w: %s", ErrNotLinearizable, strings.Join(res.Violations, "; "))
}

// violations names, for each partition (key) that has no full
// linearization, the first operation (by call) outside its longest
// partial linearization: where the history went wrong.
func violations(history []porcupine.Operation, info porcupine.LinearizationInfo) []string {
	parts := model.Partition(history)
	var out []string
	for i, partial := range info.PartialLinearizations() {
		if i >= len(parts) {
			break
		}
		longest := 0
		for _, l := range partial {
			longest = max(longest, len(l))
		}
		if longest == len(parts[i]) {
			continue
		}
		in := map[int]bool{}
		for _, l := range partial {
			if len(l) == longest {
				for _, k := range l {
					in[k] = true
				}
				break
			}
		}
		first := -1
		for k, op := range parts[i] {
			if !in[k] && (first < 0 || op.Call < parts[i][first].Call) {
				first = k
			}
		}
		op := parts[i][first]
		desc := model.DescribeOperation(op.Input, op.Output)
		out = append(out, fmt.Sprintf("key %s: %s by client %d during step %q", op.Input.(Op).Key, desc, op.ClientId, op.Metadata))
	}
	return out
}

// CheckWatches checks each watcher's stream against final, the cluster's
// history of the watched keys from the first revision: revisions strictly
// increase (in order, nothing repeated), the stream is final's beginning
// (nothing missing, nothing invented), and it holds every acknowledged
// write of ops. Streams must have caught up with final's last revision.
func CheckWatches(final []Event, streams map[string][]Event, ops []Op) error {
	var errs []error
	acked := map[string]bool{}
	for _, op := range ops {
		if op.Acknowledged() {
			acked[op.Key+"\x00"+op.Value] = true
		}
	}
	inFinal := map[string]bool{}
	for _, e := range final {
		inFinal[e.Key+"\x00"+e.Value] = true
	}
	for kv := range acked {
		if !inFinal[kv] {
			k, v, _ := strings.Cut(kv, "\x00")
			errs = append(errs, fmt.Errorf("acknowledged write %s=%s is not in the cluster's history", k, v))
		}
	}
	names := make([]string, 0, len(streams))
	for n := range streams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := streams[name]
		var last int64
		for i, e := range s {
			if e.Rev <= last {
				errs = append(errs, fmt.Errorf("watcher %s: event %d (%s at revision %d) after revision %d: out of order or repeated", name, i, e.Key, e.Rev, last))
				break
			}
			last = e.Rev
			if i >= len(final) || final[i] != e {
				want := "nothing"
				if i < len(final) {
					want = fmt.Sprintf("%s=%s at revision %d", final[i].Key, final[i].Value, final[i].Rev)
				}
				errs = append(errs, fmt.Errorf("watcher %s: event %d is %s=%s at revision %d, the cluster's history has %s there (an event missed or invented)",
					name, i, e.Key, e.Value, e.Rev, want))
				break
			}
		}
		if len(s) < len(final) {
			errs = append(errs, fmt.Errorf("watcher %s saw %d of the history's %d events: it ends at revision %d, the history at %d",
				name, len(s), len(final), last, final[len(final)-1].Rev))
		}
	}
	return errors.Join(errs...)
}
