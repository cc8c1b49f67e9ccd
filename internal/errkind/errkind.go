// Package errkind makes errors that read as their message alone while
// errors.Is still finds their kind: for messages where the name at fault
// is the news and a sentinel's text in front would only be noise.
package errkind

import "fmt"

// New returns an error of the given kind with the formatted message.
func New(kind error, format string, args ...any) error {
	return kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}

type kindError struct {
	msg  string
	kind error
}

func (e kindError) Error() string { return e.msg }
func (e kindError) Unwrap() error { return e.kind }
