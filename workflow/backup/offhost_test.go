package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/etcd-appliance/appliance/host"
)

// corrupting flips one byte of whatever it sends: a copy damaged on its
// way.
type corrupting struct{ host.Runner }

func (c corrupting) Run(ctx context.Context, stdin io.Reader, argv ...string) ([]byte, error) {
	if stdin != nil {
		b, _ := io.ReadAll(stdin)
		if len(b) > 0 {
			b[len(b)/2] ^= 0xff
		}
		stdin = bytes.NewReader(b)
	}
	return c.Runner.Run(ctx, stdin, argv...)
}

// The copy host here is this machine through the same commands a remote
// one runs (mkdir, dd, sha256sum, mv, ls, rm as argv).
func TestCopyOffHost(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "copies", "prod")
	log := logrus.New()
	log.SetOutput(io.Discard)
	with := func(r host.Runner) func() (host.Runner, func() error, error) {
		return func() (host.Runner, func() error, error) { return r, func() error { return nil }, nil }
	}
	c := Copy{To: "backup@copyhost", Dial: with(host.LocalRunner{}), Dir: dst}
	backupAt := func(at time.Time) string {
		f := filepath.Join(src, "prod-"+at.Format("20060102T150405Z")+".db")
		os.WriteFile(f, bytes.Repeat([]byte(at.String()), 1000), 0o600)
		os.WriteFile(f+".json", []byte(`{"cluster":"prod","token":"prod-token"}`), 0o600)
		return f
	}
	// Another cluster's copy, a copy of another cluster named prod too
	// (another token), one without metadata and a file of the operator's
	// share the dir.
	os.MkdirAll(dst, 0o700)
	os.WriteFile(filepath.Join(dst, "other-20200101T000000Z.db"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dst, "prod-20200101T000000Z.db"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dst, "prod-20200101T000000Z.db.json"), []byte(`{"cluster":"prod","token":"another-prod"}`), 0o600)
	os.WriteFile(filepath.Join(dst, "prod-20200102T000000Z.db"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dst, "README"), []byte("x"), 0o600)
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		f := backupAt(at.Add(time.Duration(i) * time.Hour))
		if _, err := copyOffHost(context.Background(), c, f, "prod", "prod-token", 2, 0, at.Add(3*time.Hour), log); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(dst, filepath.Base(f)))
		want, _ := os.ReadFile(f)
		if !bytes.Equal(got, want) {
			t.Fatalf("copy %d differs", i)
		}
	}
	entries, _ := os.ReadDir(dst)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"README", "other-20200101T000000Z.db", "prod-20200101T000000Z.db", "prod-20200101T000000Z.db.json", "prod-20200102T000000Z.db",
		"prod-20261130T110000Z.db", "prod-20261130T110000Z.db.json",
		"prod-20261130T120000Z.db", "prod-20261130T120000Z.db.json"}
	if !slices.Equal(names, want) {
		t.Fatalf("copy dir after 3 copies with keep_last 2:\n%q\nwant\n%q", names, want)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o700 {
		t.Errorf("copy dir mode %v", fi.Mode().Perm())
	}

	// Damaged on the way: refused, nothing left under either name.
	f := backupAt(at.Add(5 * time.Hour))
	_, err := copyOffHost(context.Background(), Copy{To: c.To, Dial: with(corrupting{host.LocalRunner{}}), Dir: dst}, f, "prod", "prod-token", 2, 0, at.Add(6*time.Hour), log)
	if !errors.Is(err, ErrCopy) {
		t.Fatalf("a damaged copy: %v", err)
	}
	for _, p := range []string{filepath.Base(f), "." + filepath.Base(f) + ".partial", filepath.Base(f) + ".json", "." + filepath.Base(f) + ".json.partial"} {
		if _, err := os.Stat(filepath.Join(dst, p)); err == nil {
			t.Errorf("%s left in the copy dir", p)
		}
	}
}
