package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// ErrCommand is wrapped by every failed command.
var ErrCommand = errors.New("command failed")

// Runner runs a command, given as argv (never a shell string), on a host.
type Runner interface {
	// Run runs argv with stdin (may be nil) and returns its stdout. A
	// failure wraps ErrCommand and carries the command's stderr.
	Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error)
}

// CommandError is a failed command with what it printed on stderr.
type CommandError struct {
	Host   string
	Argv   []string
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Host, strings.Join(e.Argv, " "))
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *CommandError) Unwrap() []error { return []error{ErrCommand, e.Err} }

// LocalRunner runs commands on this machine, in Dir when set (for tools
// that write paths relative to where they run), with Env added to the
// environment.
type LocalRunner struct {
	Dir string
	Env []string
}

// Run implements Runner.
func (l LocalRunner) Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrCommand)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = l.Dir
	if len(l.Env) > 0 {
		cmd.Env = append(os.Environ(), l.Env...)
	}
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), &CommandError{Host: "localhost", Argv: argv, Stderr: errb.String(), Err: err}
	}
	return out.Bytes(), nil
}
