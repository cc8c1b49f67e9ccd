package errkind

import (
	"errors"
	"fmt"
	"testing"
)

func TestNew(t *testing.T) {
	kind := errors.New("kind")
	err := fmt.Errorf("wrapped: %w", New(kind, "name %s is wrong", "x"))
	if !errors.Is(err, kind) {
		t.Fatal("errors.Is lost the kind")
	}
	if err.Error() != "wrapped: name x is wrong" {
		t.Fatalf("got %q", err.Error())
	}
}
