package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Fill puts count values of size bytes under the prefix (PREFIX%06d), one
// after the other, so that a test can grow every member's backend. With
// untilFull it goes on past count until the cluster refuses a write with
// NOSPACE, which is then success; any other error fails.
func Fill(o options, count, size int, untilFull bool, stdout, stderr io.Writer) int {
	c, err := o.client(o.endpoints)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer c.Close()
	value := strings.Repeat("f", size)
	limit := count
	if untilFull {
		// Bounded all the same: 8 GiB is etcd's largest quota.
		limit = int(8<<30)/size + 1
	}
	start := time.Now()
	for i := 0; i < limit; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := c.Put(ctx, fmt.Sprintf("%s%06d", o.prefix, i), value)
		cancel()
		if untilFull && errors.Is(err, rpctypes.ErrNoSpace) {
			fmt.Fprintf(stdout, "filled %d values of %d bytes in %s; then: %v\n", i, size, time.Since(start).Round(time.Millisecond), err)
			return 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "after %d values: %v\n", i, err)
			return 1
		}
	}
	if untilFull {
		fmt.Fprintf(stderr, "%d values and still no NOSPACE\n", limit)
		return 1
	}
	fmt.Fprintf(stdout, "filled %d values of %d bytes in %s\n", count, size, time.Since(start).Round(time.Millisecond))
	return 0
}
