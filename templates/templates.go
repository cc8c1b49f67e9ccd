// Package templates holds the text/template files the installer renders
// and the example inventories it prints, embedded so that the binary and
// the golden tests use the same bytes.
package templates

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

// FS holds *.tmpl (rendered with text/template) and examples/*.toml.
//
//go:embed *.tmpl examples/*.toml
var FS embed.FS

// Examples returns the names of the bundled example inventories.
func Examples() []string {
	entries, _ := fs.ReadDir(FS, "examples")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".toml"))
	}
	sort.Strings(names)
	return names
}

// Example returns one bundled example inventory.
func Example(name string) ([]byte, error) {
	return FS.ReadFile("examples/" + name + ".toml")
}
