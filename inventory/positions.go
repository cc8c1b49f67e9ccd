package inventory

import (
	"strconv"
	"strings"
)

// positions maps TOML paths to the line that defines them. BurntSushi/toml
// keeps key positions private, so a small scanner finds table headers and
// "key =" lines; it understands what inventories use (tables, arrays of
// tables, quoted and dotted keys, multi-line arrays and strings).
type positions struct {
	lines map[string]int   // indexed path ("member[1].name") -> line
	plain map[string][]int // unindexed path ("member.name") -> lines, for toml.Key
}

func (p positions) line(path string) int {
	for path != "" {
		if l, ok := p.lines[path]; ok {
			return l
		}
		// A missing key is reported at its table.
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

func locate(src string) positions {
	p := positions{lines: map[string]int{}, plain: map[string][]int{}}
	counts := map[string]int{}
	prefix, plainPrefix := "", ""
	depth := 0     // open brackets of a multi-line array
	inString := "" // closing delimiter of a multi-line string
	for i, raw := range strings.Split(src, "\n") {
		n := i + 1
		line := strings.TrimSpace(raw)
		if inString != "" {
			if strings.Contains(line, inString) {
				inString = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketDelta(line)
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "[[") {
			name := joinKey(splitKey(strings.TrimSpace(strings.TrimSuffix(strings.SplitN(line[2:], "]]", 2)[0], "]]"))))
			idx := counts[name]
			counts[name]++
			prefix = name + "[" + strconv.Itoa(idx) + "]"
			plainPrefix = name
			p.lines[prefix] = n
			p.lines[name] = firstLine(p.lines[name], n)
			continue
		}
		if line[0] == '[' {
			name := joinKey(splitKey(strings.TrimSpace(strings.SplitN(line[1:], "]", 2)[0])))
			prefix, plainPrefix = name, name
			p.lines[prefix] = firstLine(p.lines[prefix], n)
			continue
		}
		eq := keyEnd(line)
		if eq < 0 {
			continue
		}
		key := joinKey(splitKey(strings.TrimSpace(line[:eq])))
		path, plain := key, key
		if prefix != "" {
			path, plain = prefix+"."+key, plainPrefix+"."+key
		}
		if _, ok := p.lines[path]; !ok {
			p.lines[path] = n
		}
		p.plain[plain] = append(p.plain[plain], n)
		value := strings.TrimSpace(line[eq+1:])
		for _, q := range []string{`"""`, `'''`} {
			if strings.HasPrefix(value, q) && !strings.Contains(value[3:], q) {
				inString = q
			}
		}
		if strings.HasPrefix(value, "[") {
			depth = bracketDelta(value)
		}
	}
	return p
}

func firstLine(old, n int) int {
	if old == 0 {
		return n
	}
	return old
}

// unquoted calls f with each byte of s outside quoted strings, until f
// returns true.
func unquoted(s string, f func(i int, c byte) (stop bool)) {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case f(i, c):
			return
		}
	}
}

// keyEnd returns the index of the '=' that ends the key, skipping quotes.
func keyEnd(line string) int {
	end := -1
	unquoted(line, func(i int, c byte) bool {
		if c == '=' {
			end = i
		}
		return end >= 0
	})
	return end
}

func splitKey(k string) []string {
	var parts []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

func joinKey(parts []string) string { return strings.Join(parts, ".") }

// bracketDelta counts '[' minus ']' outside strings and comments.
func bracketDelta(s string) int {
	d := 0
	unquoted(s, func(_ int, c byte) bool {
		switch c {
		case '#':
			return true
		case '[':
			d++
		case ']':
			d--
		}
		return false
	})
	return d
}

// has reports whether the inventory file sets the key at path.
func (p positions) has(path string) bool {
	_, ok := p.lines[path]
	return ok
}
