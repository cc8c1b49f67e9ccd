// Package examples holds the example inventories `etcd-installer example`
// prints: NAME.toml in this directory, embedded so that the binary and the
// tests use the same bytes.
package examples

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.toml
var files embed.FS

// Names returns the names of the example inventories, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".toml"))
	}
	sort.Strings(names)
	return names
}

// Get returns one example inventory.
func Get(name string) ([]byte, error) { return files.ReadFile(name + ".toml") }
