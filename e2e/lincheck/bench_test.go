package lincheck

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// simulate builds a linearizable history of n operations of 4 clients on
// 8 keys, as a cluster under faults gives: overlapping calls, and one
// write in 50 with an unknown outcome (half of them took effect).
func simulate(n int) ([]Op, []Event) {
	rng := rand.New(rand.NewPCG(1, 2))
	vals := map[string]string{}
	var ops []Op
	var final []Event
	var t int64
	rev := int64(1)
	for i := range n {
		c := i % 4
		key := fmt.Sprintf("k%d", rng.IntN(8))
		call := t
		t += 5
		// The effect happens at t; the return comes a little later.
		op := Op{Client: c, Key: key, Call: call, Return: t + int64(rng.IntN(20))}
		switch p := rng.IntN(10); {
		case p < 5:
			op.Kind, op.Value = Put, fmt.Sprintf("v%d", i)
			if rng.IntN(50) == 0 {
				op.Unknown, op.Return = true, 0
				if rng.IntN(2) == 0 {
					ops = append(ops, op)
					continue
				}
			}
			vals[key] = op.Value
			rev++
			final = append(final, Event{Key: key, Value: op.Value, Rev: rev})
		case p < 8:
			op.Kind = Get
			op.Got, op.Found = vals[key]
		default:
			op.Kind, op.Value = CAS, fmt.Sprintf("v%d", i)
			op.Expect, op.ExpectAbsent = vals[key], vals[key] == ""
			if rng.IntN(2) == 0 {
				op.Expect, op.ExpectAbsent = "stale", false
			}
			_, found := vals[key]
			op.OK = found == !op.ExpectAbsent && (op.ExpectAbsent || vals[key] == op.Expect)
			if op.OK {
				vals[key] = op.Value
				rev++
				final = append(final, Event{Key: key, Value: op.Value, Rev: rev})
			}
		}
		ops = append(ops, op)
	}
	return ops, final
}

// BenchmarkCheck40k: the size of a system test run (4 clients for about
// five minutes).
func BenchmarkCheck40k(b *testing.B) {
	ops, final := simulate(40000)
	for b.Loop() {
		res, err := Check(ops, final, 5*time.Minute, "")
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Ops), "ops")
	}
}
