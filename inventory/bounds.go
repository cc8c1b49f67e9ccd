package inventory

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// Bounds on an inventory's text, checked before it is decoded: the TOML
// decoder's work grows faster than the text with nested values (32 KB of
// nested inline tables took 9 s and 2.9 GB), and an inventory needs
// neither much text nor deep nesting.
const (
	// MaxBytes is the largest inventory read: seven members and a
	// thousand proxy hosts take about 90 KB.
	MaxBytes = 1 << 20
	// MaxDepth is the deepest nesting of arrays and inline tables; an
	// inventory uses two.
	MaxDepth = 8
)

// checkBounds refuses text too large or too deeply nested to decode, in
// one pass that skips strings and comments.
func checkBounds(source string, data []byte) error {
	if len(data) > MaxBytes {
		return &FieldError{File: source, Msg: fmt.Sprintf("%d bytes is larger than an inventory can be (%d)", len(data), MaxBytes),
			Fix: "an inventory describes one cluster in a few kilobytes: check that this is the right file"}
	}
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			line++
		case '"', '\'':
			delim := string(c)
			if i+2 < len(data) && data[i+1] == c && data[i+2] == c {
				delim = string([]byte{c, c, c})
			}
			i += len(delim)
			for i < len(data) {
				if data[i] == '\n' {
					line++
				}
				if c == '"' && data[i] == '\\' {
					i += 2
					continue
				}
				if len(data)-i >= len(delim) && string(data[i:i+len(delim)]) == delim {
					i += len(delim) - 1
					break
				}
				i++
			}
		case '[', '{':
			depth++
			if depth > MaxDepth {
				return &FieldError{File: source, Line: line, Msg: fmt.Sprintf("values nested more than %d deep", MaxDepth),
					Fix: "an inventory nests arrays and tables two deep at most: see docs/inventory.md"}
			}
		case ']', '}':
			depth--
		}
	}
	return nil
}

// ReadFile reads an inventory file: a regular file (not a FIFO, a device
// or a directory, which could block or never end) of at most MaxBytes.
func ReadFile(path string) ([]byte, error) {
	// Non-blocking: opening a FIFO would otherwise wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%s); fix: name the inventory file itself", ErrInvalid, path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes, more than an inventory can be; fix: check that this is the right file", ErrInvalid, path, MaxBytes)
	}
	return data, nil
}
