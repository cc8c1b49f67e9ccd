package repo

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/etcd-appliance/appliance/host"
)

// Environment variables naming the signing key: never a flag, so that
// its path does not land in shell history or make's echo, and never
// printed.
const (
	KeyEnv        = "ETCD_SIGNING_KEY"
	PassphraseEnv = "ETCD_SIGNING_PASSPHRASE_FILE"
)

// SignerFromEnv opens the key named by ETCD_SIGNING_KEY (and its
// passphrase file), or, without one, the throw-away test key kept in
// throwawayHome. The GnuPG home for the real key is made under tmpDir and
// removed by the returned cleanup.
func SignerFromEnv(ctx context.Context, tmpDir, throwawayHome string) (*Signer, func(), error) {
	key := os.Getenv(KeyEnv)
	if key == "" {
		s, err := ThrowawaySigner(ctx, throwawayHome)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return nil, nil, err
	}
	home, err := os.MkdirTemp(tmpDir, "gnupg-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(home) }
	s, err := OpenSigner(ctx, home, key, os.Getenv(PassphraseEnv))
	if err != nil {
		if s != nil {
			s.Close()
		}
		(&Signer{home: home}).Close()
		cleanup()
		return nil, nil, err
	}
	return s, func() { s.Close(); cleanup() }, nil
}

// ReleaseMain is `make release`'s program: the packages in --dist become
// a signed apt and yum repository in --out.
func ReleaseMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("etcd-release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dist := fs.String("dist", "dist", "directory holding the .deb and .rpm packages")
	out := fs.String("out", "dist/repo", "repository directory to (re)write")
	baseURL := fs.String("base-url", "https://repo.example.com/etcd", "where --out will be served (written into the snippets)")
	mtime := fs.Int64("mtime", 0, "build time, seconds since 1970 (SOURCE_DATE_EPOCH)")
	work := fs.String("work", "build/repo", "private work directory (the throw-away key, GnuPG homes)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// A stop (Ctrl-C, SIGTERM) ends the tools and still runs the
	// cleanup: the imported key's GnuPG home is removed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Release(ctx, *dist, *out, *baseURL, *work, time.Unix(*mtime, 0), time.Now(), stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "etcd-release:", err)
		return 1
	}
	return 0
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	a, err1 := filepath.Abs(path)
	b, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return true
	}
	rel, err := filepath.Rel(b, a)
	return err == nil && (rel == "." || !strings.HasPrefix(rel, ".."))
}

// Release makes out a signed apt and yum repository of the packages in
// dist, signed with the key from the environment (else the throw-away key
// in work, with a warning on stderr).
func Release(ctx context.Context, dist, out, baseURL, work string, date, published time.Time, stdout, stderr io.Writer) error {
	var pkgs []string
	for _, pat := range []string{"*.deb", "*.rpm"} {
		m, _ := filepath.Glob(filepath.Join(dist, pat))
		pkgs = append(pkgs, m...)
	}
	sort.Strings(pkgs)
	if len(pkgs) == 0 {
		return fmt.Errorf("no .deb or .rpm in %s: run make package first", dist)
	}
	if err := CheckTools(); err != nil {
		return err
	}
	r := host.LocalRunner{}
	s, done, err := SignerFromEnv(ctx, work, filepath.Join(work, "throwaway-key"))
	if err != nil {
		return err
	}
	defer done()
	if s.Throwaway {
		fmt.Fprintf(stderr, "\n*** WARNING: %s is not set: signing with a THROW-AWAY key (%s, kept in %s).\n"+
			"*** This repository is for testing only: never publish it. Set %s to an armored secret key\n"+
			"*** (and %s to its passphrase file) for a release.\n\n",
			KeyEnv, s.Fingerprint(), filepath.Join(work, "throwaway-key"), KeyEnv, PassphraseEnv)
	}
	// Build replaces out as a whole, and only once the new repository is
	// complete: nothing of an older release lingers, a failure changes
	// nothing.
	res, err := Build(ctx, r, out, pkgs, s, Options{Name: "etcd", Title: "etcd appliance", BaseURL: baseURL, Date: date, Published: published, DebArches: []string{"amd64", "arm64"}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: apt repository (%d debs, suite stable) and yum repositories %v (%d rpms), signed by %s\n",
		out, res.Debs, res.RPMArches, res.RPMs, s.Fingerprint())
	for _, f := range res.Files {
		fmt.Fprintf(stdout, "  %s\n", filepath.Join(out, f))
	}
	return nil
}
