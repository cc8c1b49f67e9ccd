package repo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/packaging/repo/repotest"
)

var date = time.Unix(1700000000, 0)

// pkgs builds a tiny deb and rpm named etcdtest whose one file says what.
func pkgs(t *testing.T, what string) []string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "hello")
	os.WriteFile(src, []byte(what+"\n"), 0o644)
	var out []string
	for _, format := range []string{"deb", "rpm"} {
		info := nfpm.WithDefaults(&nfpm.Info{
			Name: "etcdtest", Arch: "amd64", Platform: "linux", Version: "1.0", Release: "1",
			Maintainer: "test <test@example.invalid>", Description: "repository test package", MTime: date,
			Overridables: nfpm.Overridables{Contents: files.Contents{{Source: src, Destination: "/usr/share/etcdtest/hello"}}},
		})
		p, err := nfpm.Get(format)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, p.ConventionalFileName(info))
		var b bytes.Buffer
		if err := p.Package(info, &b); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(path, b.Bytes(), 0o644)
		out = append(out, path)
	}
	return out
}

func signer(t *testing.T) *Signer {
	t.Helper()
	s, err := ThrowawaySigner(context.Background(), filepath.Join(t.TempDir(), "gnupg"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func build(t *testing.T, dir string, p []string, s *Signer) {
	t.Helper()
	o := Options{Name: "etcd", Title: "etcd appliance", BaseURL: "file://" + dir, Date: date, DebArches: []string{"amd64", "arm64"}}
	if _, err := Build(context.Background(), host.LocalRunner{}, dir, p, s, o); err != nil {
		t.Fatal(err)
	}
}

// apt runs apt-get against the repository in dir only (repotest.Apt).
func apt(t *testing.T, root, dir, keyring string, args ...string) (string, error) {
	t.Helper()
	return repotest.Apt(t, root, dir, keyring, args...)
}

// dnf installs etcdtest into an install root from the yum repository in
// dir with both checks on (the packages' and repomd.xml's signatures).
func dnf(t *testing.T, root, dir string) (string, error) {
	t.Helper()
	repos := filepath.Join(root, "etc", "yum.repos.d")
	os.MkdirAll(repos, 0o755)
	os.WriteFile(filepath.Join(repos, "etcd.repo"), []byte("[etcd]\nname=etcd\nbaseurl=file://"+dir+"/rpm/$basearch\n"+
		"enabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://"+dir+"/"+RPMKey+"\n"), 0o644)
	out, err := host.LocalRunner{}.Run(context.Background(), nil, "dnf", "-y", "-q", "--installroot", root, "--releasever", "1",
		"--setopt=reposdir="+repos, "--setopt=cachedir="+root+"/cache", "--setopt=install_weak_deps=0", "--setopt=skip_if_unavailable=False", "--nodocs",
		"--forcearch", "x86_64", "install", "etcdtest")
	if err != nil {
		return string(out) + err.Error(), err
	}
	return string(out), nil
}

// TestRepositoryByRealClients: apt-get and dnf accept the repository and
// install from it with every check on; each tamper (a package replaced, an
// index changed after signing, another key) makes them refuse.
func TestRepositoryByRealClients(t *testing.T) {
	s := signer(t)
	dir := t.TempDir()
	p := pkgs(t, "genuine")
	build(t, dir, p, s)
	keyring := filepath.Join(dir, Keyring)

	if out, err := apt(t, t.TempDir(), dir, keyring, "update"); err != nil || strings.Contains(out, "W:") {
		t.Fatalf("apt-get update on the signed repository: %v\n%s", err, out)
	}
	root := t.TempDir()
	apt(t, root, dir, keyring, "update")
	if out, err := apt(t, root, dir, keyring, "download", "etcdtest"); err != nil {
		t.Fatalf("apt-get download: %v\n%s", err, out)
	}
	if out, err := dnf(t, t.TempDir(), dir); err != nil {
		t.Fatalf("dnf install with gpgcheck and repo_gpgcheck: %v\n%s", err, out)
	}

	// Rebuilt from the same packages, key and date: the same bytes,
	// signatures included.
	again := t.TempDir()
	build(t, again, p, s)
	for _, f := range []string{"dists/stable/Release", "dists/stable/InRelease", "dists/stable/main/binary-amd64/Packages.xz",
		"rpm/x86_64/repodata/repomd.xml", "rpm/x86_64/repodata/repomd.xml.asc", "rpm/x86_64/Packages/etcdtest-1.0.0-1.x86_64.rpm"} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(again, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same inputs:\n%s\n---\n%s", f, a, b)
		}
	}

	tampers := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		apt    []string // the apt-get command that must fail after update
		want   string
	}{
		{"a deb changed in the pool (same size)", func(t *testing.T, dir string) {
			debs, _ := filepath.Glob(filepath.Join(dir, "pool/main/e/etcdtest/*.deb"))
			if len(debs) != 1 {
				t.Fatalf("pool: %v", debs)
			}
			flipByte(t, debs[0])
		}, []string{"download", "etcdtest"}, "Hash Sum mismatch"},
		{"Packages changed after signing", func(t *testing.T, dir string) {
			bin := filepath.Join(dir, "dists/stable/main/binary-amd64")
			data, _ := os.ReadFile(filepath.Join(bin, "Packages"))
			data = bytes.Replace(data, []byte("repository test package"), []byte("repository test packagf"), 1)
			os.WriteFile(filepath.Join(bin, "Packages"), data, 0o644)
			host.LocalRunner{}.Run(context.Background(), nil, "xz", "-kf", filepath.Join(bin, "Packages"))
			host.LocalRunner{}.Run(context.Background(), nil, "gzip", "-9nkf", filepath.Join(bin, "Packages"))
		}, nil, "Hash Sum mismatch"},
		{"signed by another key", func(t *testing.T, dir string) {
			build(t, dir, pkgs(t, "genuine"), signer(t))
		}, nil, "NO_PUBKEY"},
	}
	for _, c := range tampers {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			build(t, d, p, s)
			ring := filepath.Join(t.TempDir(), Keyring)
			data, _ := os.ReadFile(filepath.Join(d, Keyring))
			os.WriteFile(ring, data, 0o644)
			c.tamper(t, d)
			root := t.TempDir()
			out, err := apt(t, root, d, ring, "update")
			if c.apt != nil && err == nil {
				out, err = apt(t, root, d, ring, c.apt...)
			}
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("apt-get accepted it (or failed otherwise): %v\n%s", err, out)
			}
			if ents, _ := os.ReadDir(filepath.Join(root, "work")); len(ents) != 0 {
				t.Errorf("apt-get downloaded %v", ents)
			}
		})
	}

	for _, c := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"an rpm changed (same size)", func(t *testing.T, dir string) {
			flipByte(t, filepath.Join(dir, "rpm/x86_64/Packages/etcdtest-1.0.0-1.x86_64.rpm"))
		}, "incorrect checksum"},
		{"repomd.xml changed after signing", func(t *testing.T, dir string) {
			md := filepath.Join(dir, "rpm/x86_64/repodata/repomd.xml")
			data, _ := os.ReadFile(md)
			os.WriteFile(md, bytes.Replace(data, []byte("<revision>"), []byte("<revision>1"), 1), 0o644)
		}, "GPG signature verification error"},
		{"signed by another key", func(t *testing.T, dir string) {
			key, _ := os.ReadFile(filepath.Join(dir, RPMKey))
			build(t, dir, pkgs(t, "genuine"), signer(t))
			os.WriteFile(filepath.Join(dir, RPMKey), key, 0o644)
		}, "GPG signature verification error"},
	} {
		t.Run("dnf: "+c.name, func(t *testing.T) {
			d := t.TempDir()
			build(t, d, p, s)
			c.tamper(t, d)
			root := t.TempDir()
			if out, err := dnf(t, root, d); err == nil || !strings.Contains(out, c.want) {
				t.Errorf("dnf did not refuse with %q: %v\n%s", c.want, err, out)
			}
			if _, err := os.Stat(filepath.Join(root, "usr/share/etcdtest/hello")); err == nil {
				t.Error("the package was installed")
			}
		})
	}
}

// flipByte changes one byte near the end of a file, keeping its size:
// only a hash can tell.
func flipByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || len(data) < 100 {
		t.Fatalf("%s: %v", path, err)
	}
	data[len(data)-50] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
