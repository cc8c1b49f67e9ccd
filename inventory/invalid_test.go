package inventory

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite expected errors")

// TestInvalid loads each testdata/invalid/CASE.toml and compares the error
// text with CASE.err. Update with -update.
func TestInvalid(t *testing.T) {
	cases, _ := filepath.Glob("testdata/invalid/*.toml")
	if len(cases) == 0 {
		t.Fatal("no invalid cases")
	}
	for _, c := range cases {
		name := strings.TrimSuffix(filepath.Base(c), ".toml")
		t.Run(name, func(t *testing.T) {
			data, _ := os.ReadFile(c)
			inv, err := Load(filepath.Base(c), data)
			if err == nil {
				err = Validate(Defaults(inv))
			}
			if err == nil {
				t.Fatal("no error")
			}
			got := err.Error() + "\n"
			errFile := strings.TrimSuffix(c, ".toml") + ".err"
			if *update {
				os.WriteFile(errFile, []byte(got), 0o644)
			}
			want, _ := os.ReadFile(errFile)
			if !bytes.Equal([]byte(got), want) {
				t.Errorf("error text differs from %s:\n--- want\n%s--- got\n%s", errFile, want, got)
			}
		})
	}
}
