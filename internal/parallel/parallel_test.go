package parallel

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

func TestEachRunsAllAndJoinsErrorsInOrder(t *testing.T) {
	var ran atomic.Int32
	// Every call waits for all the others: Each must run them at once.
	items := []string{"a", "b", "c"}
	all := make(chan struct{})
	err := Each(items, func(i int, s string) error {
		if ran.Add(1) == int32(len(items)) {
			close(all)
		}
		<-all
		if i != 1 {
			return fmt.Errorf("%s failed", s)
		}
		return nil
	})
	if ran.Load() != 3 {
		t.Errorf("ran %d of 3", ran.Load())
	}
	if err == nil || err.Error() != "a failed\nc failed" {
		t.Errorf("joined errors: %q", err)
	}
	if err := Each([]int{1, 2}, func(int, int) error { return nil }); err != nil {
		t.Errorf("no failures: %v", err)
	}
	sentinel := errors.New("x")
	if err := Each([]int{1}, func(int, int) error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("errors.Is through the join: %v", err)
	}
}
