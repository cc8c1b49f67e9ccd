// Package parallel runs one function per item at once: hosts are set up,
// stopped and started together, and one slow host must not delay the
// others.
package parallel

import (
	"errors"
	"sync"
)

// Each calls f for every item, all at once, waits for all of them and
// returns their errors joined in item order (nil when none failed).
func Each[T any](items []T, f func(i int, item T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, item)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
