package inventory

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid inventory")

// FieldError is one problem in an inventory, located by TOML path and line.
type FieldError struct {
	File string
	Line int    // 0 when unknown
	Path string // TOML path, e.g. member[1].address; "" for the file itself
	Msg  string
	Fix  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString("\n    fix: ")
		b.WriteString(strings.ReplaceAll(e.Fix, "\n", "\n         "))
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// errorList collects FieldErrors; join sorts them by line, then path, so
// the operator reads them in file order.
type errorList struct {
	inv  *Inventory
	errs []*FieldError
}

func (l *errorList) add(path, fix, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{
		File: l.inv.Source, Line: l.inv.pos.line(path), Path: path,
		Msg: fmt.Sprintf(format, args...), Fix: fix,
	})
}

func (l *errorList) join() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool {
		a, b := l.errs[i], l.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Path < b.Path
	})
	errs := make([]error, len(l.errs))
	for i, e := range l.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}
