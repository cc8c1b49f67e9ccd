// Package envfile reads and writes environment files the way systemd's
// EnvironmentFile= does, so that what the installer renders, what the node
// reads and what doctor inspects agree on every byte.
package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Entry is one assignment read from an environment file.
type Entry struct {
	Key   string
	Value string
	Line  int // 1-based line where the assignment starts
}

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("environment file syntax error")

// Parse reads KEY=VALUE assignments with systemd's rules: blank lines and
// lines starting with '#' or ';' are ignored, whitespace around the key and
// before the value is dropped, double quotes allow backslash escapes, single
// quotes are literal, and a backslash at the end of a line continues it.
// name is used in error messages only.
func Parse(name string, r io.Reader) ([]Entry, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	p := parser{name: name, src: data, line: 1}
	return p.parse()
}

// Map returns the entries as a map; a later assignment wins, as in systemd.
func Map(entries []Entry) map[string]string {
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		m[e.Key] = e.Value
	}
	return m
}

// Environ returns the entries as KEY=VALUE strings in file order, with
// later duplicates replacing earlier ones in place.
func Environ(entries []Entry) []string {
	idx := map[string]int{}
	var out []string
	for _, e := range entries {
		kv := e.Key + "=" + e.Value
		if i, ok := idx[e.Key]; ok {
			out[i] = kv
			continue
		}
		idx[e.Key] = len(out)
		out = append(out, kv)
	}
	return out
}

type parser struct {
	name string
	src  []byte
	pos  int
	line int
}

func (p *parser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s: %w", p.name, line, fmt.Sprintf(format, args...), ErrSyntax)
}

func (p *parser) peek() (byte, bool) {
	if p.pos >= len(p.src) {
		return 0, false
	}
	return p.src[p.pos], true
}

func (p *parser) next() byte {
	c := p.src[p.pos]
	p.pos++
	if c == '\n' {
		p.line++
	}
	return c
}

func (p *parser) skipLine() {
	for {
		c, ok := p.peek()
		if !ok {
			return
		}
		p.next()
		if c == '\n' {
			return
		}
	}
}

func (p *parser) parse() ([]Entry, error) {
	var out []Entry
	for {
		// Leading whitespace, blank lines and comments.
		c, ok := p.peek()
		if !ok {
			return out, nil
		}
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.next()
			continue
		case c == '#' || c == ';':
			p.skipLine()
			continue
		}
		start := p.line
		var key bytes.Buffer
		for {
			c, ok := p.peek()
			if !ok || c == '\n' {
				return nil, p.errorf(start, "line %q has no '=': write KEY=VALUE", strings.TrimSpace(key.String()))
			}
			if c == '=' {
				p.next()
				break
			}
			key.WriteByte(p.next())
		}
		k := strings.TrimRight(key.String(), " \t")
		if !ValidKey(k) {
			return nil, p.errorf(start, "invalid variable name %q: use letters, digits and '_' and do not start with a digit", k)
		}
		v, err := p.value(start)
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: k, Value: v, Line: start})
	}
}

// value reads the rest of an assignment; the state machine follows
// systemd's parse_env_file_internal (src/basic/env-file.c).
func (p *parser) value(start int) (string, error) {
	// Whitespace between '=' and the value is not part of it.
	for {
		c, ok := p.peek()
		if !ok || (c != ' ' && c != '\t') {
			break
		}
		p.next()
	}
	var b strings.Builder
	trailing := 0 // unquoted trailing whitespace, dropped at end of line
	for {
		c, ok := p.peek()
		if !ok {
			break
		}
		switch c {
		case '\n':
			p.next()
			return b.String()[:b.Len()-trailing], nil
		case '\r':
			// CRLF files from Windows editors: drop the CR.
			p.next()
			continue
		case '\\':
			p.next()
			n, ok := p.peek()
			if !ok {
				return b.String(), nil
			}
			p.next()
			if n == '\n' {
				continue // line continuation
			}
			b.WriteByte(n)
			trailing = 0
		case '"':
			p.next()
			for {
				q, ok := p.peek()
				if !ok {
					return "", p.errorf(start, "unterminated double quote")
				}
				p.next()
				if q == '"' {
					break
				}
				if q == '\\' {
					n, ok := p.peek()
					if !ok {
						return "", p.errorf(start, "unterminated double quote")
					}
					p.next()
					switch n {
					case '"', '\\', '`', '$':
						b.WriteByte(n)
					case '\n':
						// continuation inside quotes
					default:
						b.WriteByte('\\')
						b.WriteByte(n)
					}
					continue
				}
				b.WriteByte(q)
			}
			trailing = 0
		case '\'':
			p.next()
			for {
				q, ok := p.peek()
				if !ok {
					return "", p.errorf(start, "unterminated single quote")
				}
				p.next()
				if q == '\'' {
					break
				}
				b.WriteByte(q)
			}
			trailing = 0
		case ' ', '\t':
			p.next()
			b.WriteByte(c)
			trailing++
		default:
			p.next()
			b.WriteByte(c)
			trailing = 0
		}
	}
	return b.String()[:b.Len()-trailing], nil
}

// ValidKey reports whether k is a name systemd accepts for a variable.
func ValidKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Quote returns v in a form Parse reads back unchanged: bare when it is
// made only of characters with no meaning to the parser, otherwise in
// double quotes with the characters that are special inside them escaped.
// It refuses values that cannot be represented on one line.
func Quote(v string) (string, error) {
	for _, c := range v {
		if c == '\n' || c == '\r' || c == 0 || (c < 0x20 && c != '\t') || c == 0x7f {
			return "", fmt.Errorf("value %q contains a control character", v)
		}
	}
	if v != "" && isBare(v) {
		return v, nil
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range v {
		switch c {
		case '"', '\\', '`', '$':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String(), nil
}

func isBare(v string) bool {
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-_.,:/=@+%[]", c):
		default:
			return false
		}
	}
	return true
}
