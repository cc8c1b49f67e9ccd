package workflow

import (
	"context"
	"fmt"
)

// Step is one named part of a workflow. A step is idempotent: a workflow
// stopped half-way is resumed by running it again.
type Step struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run runs steps in order and stops at the first that fails, naming it.
func Run(ctx context.Context, steps ...Step) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if err := s.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return nil
}
