// Package packaging builds the etcd appliance's deb and rpm packages with
// nfpm as a library: the `etcd` package (server, etcdctl, etcdutl,
// etcd-installer, units, default configuration) and per-host configuration
// packages rendered from an inventory.
package packaging

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm" // registers the rpm packager

	"github.com/etcd-appliance/appliance/units"
	"github.com/etcd-appliance/appliance/workflow"
)

//go:embed files
var embedded embed.FS

// Formats are the package formats built.
var Formats = []string{"deb", "rpm"}

const (
	maintainer  = "etcd appliance team <team@etcd-appliance.invalid>"
	homepage    = "https://etcd.io"
	description = "Distributed reliable key-value store (etcd appliance)\n" +
		"etcd is a distributed key-value store for the most critical data of a\n" +
		"distributed system. This package holds the etcd server with a systemd\n" +
		"integration (readiness, status, watchdog), the etcdctl and etcdutl tools\n" +
		"and etcd-installer, which provisions clusters from one TOML inventory."
)

// EtcdOptions describe one build of the etcd package.
type EtcdOptions struct {
	// Version is the etcd version (3.7.3); Revision the package revision.
	Version, Revision string
	// Arch is a Go architecture: amd64 or arm64.
	Arch string
	// Binary is the multi-call etcd binary for Arch.
	Binary string
	// Completions maps a file name under the completion directories
	// (etcdctl, etcd-installer) to bash and zsh scripts.
	Completions map[string]Completion
	// MTime is every file's modification time (reproducible builds).
	MTime time.Time
	// Out is the directory the packages are written to.
	Out string
}

// Completion is a command's shell completion scripts.
type Completion struct{ Bash, Zsh []byte }

// stage writes embedded and generated files to a directory nfpm reads
// from (it takes scripts and contents by path).
type stage struct {
	dir string
}

func newStage() (*stage, error) {
	d, err := os.MkdirTemp("", "etcd-package-")
	if err != nil {
		return nil, err
	}
	return &stage{dir: d}, nil
}

func (s *stage) close() { os.RemoveAll(s.dir) }

func (s *stage) write(name string, data []byte) (string, error) {
	p := filepath.Join(s.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, os.WriteFile(p, data, 0o644)
}

func (s *stage) embedded(name string) (string, error) {
	b, err := embedded.ReadFile("files/" + name)
	if err != nil {
		return "", err
	}
	return s.write(name, b)
}

// gzipped compresses deterministically: no name, no time in the header
// (as `gzip -n` does, which lintian asks of man pages).
func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func fileInfo(mode os.FileMode, owner, group string, mtime time.Time) *files.ContentFileInfo {
	return &files.ContentFileInfo{Mode: mode, Owner: owner, Group: group, MTime: mtime}
}

// changelog writes a chglog file with an entry for this version.
func (s *stage) changelog(version string, mtime time.Time, note string) (string, error) {
	y := fmt.Sprintf("- semver: %s\n  date: %s\n  packager: %s\n  deb:\n    urgency: medium\n    distributions: [stable]\n  changes:\n    - note: %q\n",
		version, mtime.UTC().Format(time.RFC3339), maintainer, note)
	return s.write("changelog.yml", []byte(y))
}

// contents collects a package's files, staging generated ones.
type contents struct {
	s  *stage
	mt time.Time
	c  files.Contents
}

// file adds src (a path, or a link target) at dst.
func (c *contents) file(src, dst, typ string, mode os.FileMode, owner, group string) {
	c.c = append(c.c, &files.Content{Source: src, Destination: dst, Type: typ, FileInfo: fileInfo(mode, owner, group, c.mt)})
}

// data stages data as name and adds it at dst for one packager ("" for
// both), owned by root.
func (c *contents) data(name string, data []byte, dst string, mode os.FileMode, packager string) error {
	p, err := c.s.write(name, data)
	if err != nil {
		return err
	}
	c.c = append(c.c, &files.Content{Source: p, Destination: dst, Packager: packager, FileInfo: fileInfo(mode, "root", "root", c.mt)})
	return nil
}

// doc adds documentation: rpm flags documentation and licences (%doc,
// %license), deb has no such flags, so each goes in twice, once per
// packager.
func (c *contents) doc(name string, data []byte, dst, rpmDst, rpmType string) error {
	p, err := c.s.write("doc/"+name, data)
	if err != nil {
		return err
	}
	c.c = append(c.c,
		&files.Content{Source: p, Destination: dst, Packager: "deb", FileInfo: fileInfo(0o644, "root", "root", c.mt)},
		&files.Content{Source: p, Destination: rpmDst, Packager: "rpm", Type: rpmType, FileInfo: fileInfo(0o644, "root", "root", c.mt)})
	return nil
}

// etcdContents are the etcd package's files: the binary and its links,
// units, default configuration, users and directories, documentation and
// completions.
func etcdContents(s *stage, o EtcdOptions) (files.Contents, error) {
	c := &contents{s: s, mt: o.MTime}
	// Directories the package owns, with their owner and mode: implicit
	// parents would take a file's owner (the wrong group on /etc/etcd).
	for _, d := range []string{"/etc/etcd", "/usr/share/doc/etcd"} {
		c.file("", d, files.TypeDir, 0o755, "root", "root")
	}
	c.file(o.Binary, "/usr/bin/etcd", "", 0o755, "root", "root")
	for _, l := range []string{"etcdctl", "etcdutl", "etcd-installer"} {
		c.file("etcd", "/usr/bin/"+l, files.TypeSymlink, 0o777, "root", "root")
	}
	for _, u := range []string{units.Etcd, units.GRPCProxy, units.Backup, units.BackupTimer, units.Maintenance, units.MaintenanceTimer} {
		b, err := units.FS.ReadFile(u)
		if err != nil {
			return nil, err
		}
		if err := c.data("units/"+u, b, "/usr/lib/systemd/system/"+u, 0o644, ""); err != nil {
			return nil, err
		}
	}
	conf, err := s.embedded("etcd.conf")
	if err != nil {
		return nil, err
	}
	// The default configuration: the operator's (or apply's) edits win on
	// upgrade (deb conffile, rpm %config(noreplace)).
	c.file(conf, "/etc/etcd/etcd.conf", files.TypeConfigNoReplace, 0o640, "root", "etcd")
	nr, err := s.embedded("needrestart.conf")
	if err != nil {
		return nil, err
	}
	c.file(nr, "/etc/needrestart/conf.d/etcd.conf", files.TypeConfig, 0o644, "root", "root")
	for _, f := range []struct{ name, dst string }{
		{"sysusers.conf", "/usr/lib/sysusers.d/etcd.conf"},
		{"tmpfiles.conf", "/usr/lib/tmpfiles.d/etcd.conf"},
	} {
		p, err := s.embedded(f.name)
		if err != nil {
			return nil, err
		}
		c.file(p, f.dst, "", 0o644, "root", "root")
	}
	if err := etcdDocs(c); err != nil {
		return nil, err
	}
	for name, comp := range o.Completions {
		if err := c.data("bash/"+name, comp.Bash, "/usr/share/bash-completion/completions/"+name, 0o644, ""); err != nil {
			return nil, err
		}
		// Debian and EL look for zsh completions in different places.
		if err := c.data("zsh-deb/_"+name, comp.Zsh, "/usr/share/zsh/vendor-completions/_"+name, 0o644, "deb"); err != nil {
			return nil, err
		}
		if err := c.data("zsh-rpm/_"+name, comp.Zsh, "/usr/share/zsh/site-functions/_"+name, 0o644, "rpm"); err != nil {
			return nil, err
		}
	}
	return c.c, nil
}

// etcdDocs adds the copyright, README, man pages and lintian overrides.
func etcdDocs(c *contents) error {
	for _, d := range []struct{ name, dst, rpmDst, typ string }{
		// rpm keeps %license files apart from documentation.
		{"copyright", "/usr/share/doc/etcd/copyright", "/usr/share/licenses/etcd/copyright", files.TypeRPMLicense},
		{"README.md", "/usr/share/doc/etcd/README.md", "/usr/share/doc/etcd/README.md", files.TypeRPMDoc},
	} {
		b, err := embedded.ReadFile("files/" + d.name)
		if err != nil {
			return err
		}
		if err := c.doc(d.name, b, d.dst, d.rpmDst, d.typ); err != nil {
			return err
		}
	}
	for _, m := range []string{"etcd", "etcdctl", "etcdutl", "etcd-installer"} {
		b, err := embedded.ReadFile("files/man/" + m + ".1")
		if err != nil {
			return err
		}
		if err := c.doc(m+".1.gz", gzipped(b), "/usr/share/man/man1/"+m+".1.gz", "/usr/share/man/man1/"+m+".1.gz", files.TypeRPMDoc); err != nil {
			return err
		}
	}
	overrides, err := embedded.ReadFile("files/lintian-overrides")
	if err != nil {
		return err
	}
	return c.data("lintian-overrides", overrides, "/usr/share/lintian/overrides/etcd", 0o644, "deb")
}

// EtcdPackages builds the etcd deb and rpm for one architecture and returns
// their paths.
func EtcdPackages(o EtcdOptions) ([]string, error) {
	s, err := newStage()
	if err != nil {
		return nil, err
	}
	defer s.close()
	c, err := etcdContents(s, o)
	if err != nil {
		return nil, err
	}
	scripts := nfpm.Scripts{}
	for name, dst := range map[string]*string{
		"preinstall.sh": &scripts.PreInstall, "postinstall.sh": &scripts.PostInstall, "postremove.sh": &scripts.PostRemove,
	} {
		p, err := s.embedded("scripts/" + name)
		if err != nil {
			return nil, err
		}
		*dst = p
	}
	cl, err := s.changelog(o.Version+"-"+o.Revision, o.MTime, "Build of etcd "+o.Version+", package revision "+o.Revision+".")
	if err != nil {
		return nil, err
	}
	info := &nfpm.Info{
		Name: "etcd", Arch: o.Arch, Platform: "linux", Version: o.Version, Release: o.Revision,
		VersionSchema: "none", Section: "database", Priority: "optional",
		Maintainer: maintainer, Description: description, Vendor: "etcd appliance",
		Homepage: homepage, License: "Apache-2.0", Changelog: cl, MTime: o.MTime,
		Overridables: nfpm.Overridables{
			Depends:  []string{"systemd"},
			Contents: c,
			Scripts:  scripts,
			Deb:      nfpm.Deb{Compression: "xz"},
			RPM: nfpm.RPM{
				Compression: "xz", BuildHost: "etcd-appliance", Group: "Applications/Databases",
				Summary: "Distributed reliable key-value store (etcd appliance)", Packager: maintainer,
			},
		},
	}
	per := map[string]func(*nfpm.Info){
		// Debian ships etcd as etcd-server and etcd-client; this package
		// takes their place. useradd is in passwd.
		"deb": func(i *nfpm.Info) {
			i.Depends = append(i.Depends, "passwd")
			i.Conflicts = []string{"etcd-server", "etcd-client"}
			i.Replaces = []string{"etcd-server", "etcd-client"}
			i.Provides = []string{"etcd-server", "etcd-client"}
		},
		// EL ships etcd under the same name: a higher version replaces it.
		"rpm": func(i *nfpm.Info) {
			i.Depends = append(i.Depends, "shadow-utils", "/bin/sh")
		},
	}
	return buildAll(info, per, o.Out, false, nil)
}

// buildAll builds info in every format, each adjusted by per[format],
// into dir; every package written goes through plan. A secret package
// (one carrying private keys) is written 0600 into a directory only its
// owner can read.
func buildAll(info *nfpm.Info, per map[string]func(*nfpm.Info), dir string, secret bool, plan *workflow.Plan) ([]string, error) {
	var out []string
	for _, format := range Formats {
		i := *info
		i.Overridables.Contents = append(files.Contents(nil), info.Contents...)
		if f := per[format]; f != nil {
			f(&i)
		}
		p, err := build(format, &i, dir, secret, plan)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// build writes one package into dir through plan and returns its path.
func build(format string, info *nfpm.Info, dir string, secret bool, plan *workflow.Plan) (string, error) {
	info = nfpm.WithDefaults(info)
	pkg, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	target := filepath.Join(dir, pkg.ConventionalFileName(info))
	what := fmt.Sprintf("build %s (%d files)", target, len(info.Contents))
	mode := os.FileMode(0o644)
	if secret {
		what = fmt.Sprintf("build %s (%d files; it holds private keys: mode 0600)", target, len(info.Contents))
		mode = 0o600
	}
	return target, plan.Do("", what, func() error {
		if err := outDir(dir, secret); err != nil {
			return err
		}
		tmp := target + ".part"
		// A stale or planted .part goes; O_EXCL then never follows a link
		// and the mode holds from the first byte.
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		info.Target = target
		if err := pkg.Package(info, f); err != nil {
			f.Close()
			os.Remove(tmp)
			return fmt.Errorf("building %s: %w", filepath.Base(target), err)
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Rename(tmp, target)
	})
}

// ErrSecretsExposed means packages holding private keys would go where
// others can read them.
var ErrSecretsExposed = errors.New("private keys would be readable by others")

// outDir makes sure dir exists; for secret packages it is created 0700,
// and an existing one others can read or enter is refused.
func outDir(dir string, secret bool) error {
	mode := os.FileMode(0o755)
	if secret {
		mode = 0o700
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, mode)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case secret && fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%w: %s has mode %04o and the packages carry private keys; fix: chmod 700 %s, or use a new --out directory (it is created 0700)",
			ErrSecretsExposed, dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// WriteSHA256SUMS writes, in sha256sum's format, the checksum of every
// file in dir except SHA256SUMS itself.
func WriteSHA256SUMS(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, e := range entries {
		if e.IsDir() || e.Name() == "SHA256SUMS" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), e.Name())
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}

func statFile(p string) (int64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
