package node

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/etcd-appliance/appliance/internal/envfile"
)

// fill replaces @KEY@ placeholders in a testdata template.
func fill(t *testing.T, path string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "@"+k+"@", v)
	}
	if strings.Contains(s, "@") && strings.Count(s, "@")%2 == 0 && strings.Contains(s, "@\n") {
		t.Fatalf("unfilled placeholder in %s", path)
	}
	return s
}

// shellWords splits s as /bin/sh would, quotes included.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", `eval "set -- $1"; printf '%s\0' "$@"`, "sh", s).Output()
	if err != nil {
		t.Fatalf("splitting %q: %v", s, err)
	}
	words := strings.Split(string(out), "\x00")
	return words[:len(words)-1]
}

// unitEnvironment returns the Environment= assignments of a unit file,
// read with go-systemd's parser and split as systemd splits them (the
// values in our testdata carry no quotes).
func unitEnvironment(t *testing.T, content string) []string {
	t.Helper()
	opts, err := unit.DeserializeOptions(strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, o := range opts {
		if o.Section == "Service" && o.Name == "Environment" {
			env = append(env, shellWords(t, o.Value)...)
		}
	}
	return env
}

// envFileEnvironment reads an env file the way EnvironmentFile= does.
func envFileEnvironment(t *testing.T, content string) []string {
	t.Helper()
	entries, err := envfile.Parse("etcd.conf", bytes.NewReader([]byte(content)))
	if err != nil {
		t.Fatal(err)
	}
	return envfile.Environ(entries)
}

// procfileCommands returns each Procfile entry's arguments (after the
// program name), split by the shell as goreman runs them.
func procfileCommands(t *testing.T, content string) map[string][]string {
	t.Helper()
	cmds := map[string][]string{}
	for _, line := range strings.Split(content, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, cmd, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("bad Procfile line %q", line)
		}
		words := shellWords(t, cmd)
		cmds[name] = words[1:]
	}
	return cmds
}
