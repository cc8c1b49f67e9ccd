package docs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// block is a fenced shell block of a document.
type block struct {
	file string
	line int
	text string
	// skip is why it is not run; until, the output after which a block
	// that runs until Ctrl-C gets one.
	skip, until string
}

var directive = regexp.MustCompile(`^\s*<!-- doctest: (skip: (.+)|until "(.+)") -->\s*$`)

// shellBlocks finds the ```sh blocks of a Markdown file and the doctest
// directive on the line before each.
func shellBlocks(t *testing.T, file string) []block {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	prev := ""
	s := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		fence := strings.TrimSpace(line)
		switch {
		case cur == nil && (fence == "```sh" || fence == "```bash"):
			cur = &block{file: file, line: n}
			if m := directive.FindStringSubmatch(prev); m != nil {
				cur.skip, cur.until = m[2], m[3]
			}
		case cur != nil && fence == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += strings.TrimPrefix(line, "   ") + "\n"
		}
		prev = line
	}
	return out
}

// repoCopy copies what git knows of the repository (committed or not,
// ignored files left out) to a new directory, and builds bin/ there, as a
// clone's first make would: the blocks run in it, never in the working
// tree (`make run` keeps its data in ./.run).
func repoCopy(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		fi, err := os.Lstat(filepath.Join(root, f))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted but not committed, or a link
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dst, f), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestShellBlocks runs every ```sh block of README.md and docs/*.md that
// can run on this machine alone, as written, in a copy of the repository
// with bin/ on PATH (as the package puts the commands on PATH). A block
// that cannot says why (`<!-- doctest: skip: WHY -->` on the line before
// it); one that runs until Ctrl-C names the output after which it gets
// one (`<!-- doctest: until "TEXT" -->`) and must then end with exit 0.
// Blocks of one file run in order in one directory.
func TestShellBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make and a local cluster")
	}
	files, _ := filepath.Glob("*.md")
	files = append([]string{"../README.md"}, files...)
	repo := repoCopy(t)
	env := append(os.Environ(), "PATH="+filepath.Join(repo, "bin")+":/usr/local/go/bin:"+os.Getenv("PATH"))
	build := exec.Command("make", "build")
	build.Dir, build.Env = repo, env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make build in the copy: %v\n%s", err, out)
	}
	ran := 0
	for _, f := range files {
		dir := t.TempDir()
		if f == "../README.md" {
			dir = repo // its commands run from a clone
		}
		for _, b := range shellBlocks(t, f) {
			name := filepath.Base(b.file) + ":" + strconv.Itoa(b.line)
			if b.skip != "" {
				t.Logf("%s: not run: %s", name, b.skip)
				continue
			}
			ran++
			t.Run(name, func(t *testing.T) { runBlock(t, b, dir, env) })
		}
	}
	if ran < 4 {
		t.Errorf("only %d blocks ran", ran)
	}
}

func runBlock(t *testing.T, b block, dir string, env []string) {
	// make run's example (examples/local.toml) listens on fixed ports:
	// say so when something else holds them, rather than failing later
	// and obscurely.
	if strings.Contains(b.text, "make run") {
		for _, port := range []string{"2379", "22379", "32379", "12380", "22380", "32380"} {
			ln, err := net.Listen("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatalf("port %s is taken (another `make run`?); the README's `make run` needs it: %v", port, err)
			}
			ln.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", b.text)
	cmd.Dir, cmd.Env = dir, env
	// A group of its own: Ctrl-C reaches the whole foreground job, as a
	// terminal sends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &etcdtest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = io.NopCloser(strings.NewReader(""))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if b.until != "" {
		deadline := time.After(5 * time.Minute)

	wait:
		for !strings.Contains(out.String(), b.until) {
			select {
			case err := <-done:
				t.Fatalf("ended (%v) before printing %q:\n%s\n%s", err, b.until, b.text, out.String())
			case <-deadline:
				t.Fatalf("no %q in 5 minutes:\n%s\n%s", b.until, b.text, out.String())
			case <-time.After(100 * time.Millisecond):
				continue wait
			}
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	}
	select {
	case err := <-done:
		// After Ctrl-C, make reports the interrupt and ends by SIGINT,
		// as it does on a terminal: what ran under it must have stopped
		// cleanly.
		var ee *exec.ExitError
		interrupted := b.until != "" && errors.As(err, &ee) && (ee.ExitCode() == 130 ||
			ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT)
		if err != nil && !interrupted {
			t.Errorf("%v\n%s\n%s", err, b.text, out.String())
		}
		if b.until != "" && strings.Contains(out.String(), `"level":"error"`) {
			t.Errorf("stopping logged errors:\n%s", out.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatalf("did not end:\n%s\n%s", b.text, out.String())
	}
}
