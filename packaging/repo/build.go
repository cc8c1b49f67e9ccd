package repo

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/etcd-appliance/appliance/host"
)

//go:embed templates
var templates embed.FS

var tmpl = template.Must(template.ParseFS(templates, "templates/*.tmpl"))

// Names of the etcd repository's keys (Options.Name "etcd").
const (
	// Keyring is the public key as an apt keyring (Signed-By:).
	Keyring = "etcd-archive-keyring.gpg"
	// RPMKey is the armored public key (rpm --import, gpgkey=).
	RPMKey = "RPM-GPG-KEY-etcd"
)

// Keyring is the apt keyring's file name for this repository: its own,
// so that the etcd repository and a per-host one live side by side.
func (o Options) Keyring() string { return o.Name + "-archive-keyring.gpg" }

// RPMKey is the armored key's file name for this repository.
func (o Options) RPMKey() string { return "RPM-GPG-KEY-" + o.Name }

// Options describe a repository.
type Options struct {
	// Name is the repository's name: the sources and .repo file names
	// and the yum repository id (etcd; etcd-node for per-host packages).
	Name string
	// Title is the human name in Release's Label and the .repo file.
	Title string
	// BaseURL is where the repository directory is served; the snippets
	// point there.
	BaseURL string
	// Date is the build's time (SOURCE_DATE_EPOCH): Release's Date, the
	// repodata timestamps and the signatures' time.
	Date time.Time
	// DebArches are the apt architectures listed, even when empty.
	DebArches []string
	// RPMArches get the noarch rpms: a yum repository is per $basearch
	// (default x86_64 and aarch64).
	RPMArches []string
	// Private makes the repository directory 0700 (packages holding
	// private keys); else 0755.
	Private bool
	// Published is the index files' modification time (default: now).
	Published time.Time
}

// Result is what Build wrote.
type Result struct {
	Debs, RPMs int
	// RPMArches are the yum repositories made, one per architecture.
	RPMArches []string
	// Files are the user-facing files: keys and snippets.
	Files []string
}

// debName is what a package file may be called here: apt's and rpm's
// package name characters, nothing that could be a path or an option.
var (
	debName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.~-]*$`)
	rpmName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._~^-]*\.rpm$`)
)

// Build makes dir a signed apt and yum repository of pkgs (.deb and .rpm
// files) and nothing else. It builds beside dir and swaps the result in:
// a failure (a wrong passphrase, a missing tool) leaves the published
// repository as it was, and nothing planted in dir (a stale package, a
// symlink) is signed or followed. Building again from the same packages,
// key and date gives the same bytes.
func Build(ctx context.Context, r host.Runner, dir string, pkgs []string, s *Signer, o Options) (Result, error) {
	var res Result
	if err := CheckTools(); err != nil {
		return res, err
	}
	var debs, rpms []string
	for _, p := range pkgs {
		name, _, _ := strings.Cut(filepath.Base(p), "_")
		switch filepath.Ext(p) {
		case ".deb":
			if !debName.MatchString(name) {
				return res, fmt.Errorf("%s: not a package file name (NAME_VERSION_ARCH.deb)", p)
			}
			debs = append(debs, p)
		case ".rpm":
			if !rpmName.MatchString(filepath.Base(p)) {
				return res, fmt.Errorf("%s: not a package file name (NAME-VERSION-RELEASE.ARCH.rpm)", p)
			}
			rpms = append(rpms, p)
		}
	}
	res.Debs, res.RPMs = len(debs), len(rpms)
	if err := replaceable(dir, pkgs); err != nil {
		return res, err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".new-")
	if err != nil {
		return res, err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	mode := os.FileMode(0o755)
	if o.Private {
		mode = 0o700
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return res, err
	}
	if err := s.setup(o.Date); err != nil {
		return res, err
	}
	defer s.setup(time.Time{})
	if res, err = buildInto(ctx, r, tmp, debs, rpms, s, o, res); err != nil {
		return res, err
	}
	// Swap: the old repository goes aside, the new one takes its name,
	// the old one is removed.
	old := ""
	if _, err := os.Lstat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return res, err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return res, err
	}
	done = true
	if old != "" {
		return res, os.RemoveAll(old)
	}
	return res, nil
}

// Marker names the file every repository built here holds: only such a
// directory (or an empty one) is ever replaced.
const Marker = ".etcd-appliance-repo"

// replaceable refuses a directory Build must not replace as a whole: one
// that is not a directory, holds anything but a repository built here
// (a home directory, the package output given as the repository), or
// holds the packages to publish.
func replaceable(dir string, pkgs []string) error {
	for _, p := range pkgs {
		if within(p, dir) {
			return fmt.Errorf("%s is inside %s, which is replaced as a whole by the repository: give the repository its own directory", p, dir)
		}
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory: give the repository a directory of its own", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, Marker)); err == nil {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty and is no repository built by etcd-appliance (no %s): it would be replaced as a whole, so nothing was done; give a new or empty directory", dir, Marker)
	}
	return nil
}

func buildInto(ctx context.Context, r host.Runner, dir string, debs, rpms []string, s *Signer, o Options, res Result) (Result, error) {
	if err := aptRepo(ctx, r, dir, debs, s, o); err != nil {
		return res, err
	}
	arches, err := yumRepos(ctx, r, dir, rpms, s, o)
	if err != nil {
		return res, err
	}
	res.RPMArches = arches
	for _, k := range []struct {
		name  string
		armor bool
	}{{o.Keyring(), false}, {o.RPMKey(), true}} {
		if err := s.Export(ctx, filepath.Join(dir, k.name), k.armor); err != nil {
			return res, err
		}
		res.Files = append(res.Files, k.name)
	}
	if err := os.WriteFile(filepath.Join(dir, Marker), []byte("built by etcd-appliance: rebuilding replaces this directory as a whole\n"), 0o644); err != nil {
		return res, err
	}
	for _, sn := range []struct{ file, tmpl string }{{o.Name + ".sources", "sources.tmpl"}, {o.Name + ".repo", "yum.repo.tmpl"}} {
		var b bytes.Buffer
		if err := tmpl.ExecuteTemplate(&b, sn.tmpl, o); err != nil {
			return res, err
		}
		if err := os.WriteFile(filepath.Join(dir, sn.file), b.Bytes(), 0o644); err != nil {
			return res, err
		}
		res.Files = append(res.Files, sn.file)
	}
	// Packages carry the release's date (primary.xml records it, so
	// rebuilding gives the same bytes); indexes, keys and snippets the
	// build's own time: web servers answer If-Modified-Since from it, and
	// a release rebuilt from the same commit (a new revision, a new key)
	// must not look unchanged.
	now := o.Published
	if now.IsZero() {
		now = time.Now()
	}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		t := now
		if ext := filepath.Ext(p); ext == ".deb" || ext == ".rpm" {
			t = o.Date
		}
		return os.Chtimes(p, t, t)
	})
	return res, err
}

// aptRepo writes pool/, dists/stable/main/binary-ARCH/Packages{,.gz,.xz} with
// apt-ftparchive, dists/stable/Release, and signs Release twice: InRelease
// (clearsigned) and Release.gpg (detached).
func aptRepo(ctx context.Context, r host.Runner, dir string, debs []string, s *Signer, o Options) error {
	dists := filepath.Join(dir, "dists", "stable")
	for _, d := range debs {
		name, _, _ := strings.Cut(filepath.Base(d), "_")
		pool := filepath.Join(dir, "pool", "main", name[:1], name)
		if err := copyFile(d, filepath.Join(pool, filepath.Base(d))); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "pool"), 0o755); err != nil {
		return err
	}
	for _, arch := range o.DebArches {
		bin := filepath.Join(dists, "main", "binary-"+arch)
		if err := os.MkdirAll(bin, 0o755); err != nil {
			return err
		}
		// Paths in Packages are relative to the repository's root, so
		// apt-ftparchive runs there (a local tool: the repository is built
		// on this machine).
		out, err := host.LocalRunner{Dir: dir}.Run(ctx, nil, "apt-ftparchive", "--arch", arch, "packages", "pool")
		if err != nil {
			return fmt.Errorf("apt-ftparchive packages (%s): %w", arch, err)
		}
		if err := os.WriteFile(filepath.Join(bin, "Packages"), out, 0o644); err != nil {
			return err
		}
		for _, z := range [][]string{{"gzip", "-9nkf"}, {"xz", "-kf"}} {
			if _, err := r.Run(ctx, nil, append(z, filepath.Join(bin, "Packages"))...); err != nil {
				return err
			}
		}
	}
	release, err := r.Run(ctx, nil, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin="+o.Title,
		"-o", "APT::FTPArchive::Release::Label="+o.Title,
		"-o", "APT::FTPArchive::Release::Suite=stable",
		"-o", "APT::FTPArchive::Release::Codename=stable",
		"-o", "APT::FTPArchive::Release::Architectures="+strings.Join(o.DebArches, " "),
		"-o", "APT::FTPArchive::Release::Components=main",
		"-o", "APT::FTPArchive::Release::Description="+o.Title,
		"-o", "APT::FTPArchive::Release::Date="+o.Date.UTC().Format(time.RFC1123Z),
		"release", dists)
	if err != nil {
		return fmt.Errorf("apt-ftparchive release: %w", err)
	}
	rel := filepath.Join(dists, "Release")
	if err := os.WriteFile(rel, release, 0o644); err != nil {
		return err
	}
	if err := s.Clearsign(ctx, rel, filepath.Join(dists, "InRelease")); err != nil {
		return err
	}
	return s.Detach(ctx, rel, filepath.Join(dists, "Release.gpg"), false)
}

// yumRepos writes one repository per rpm architecture, rpm/ARCH/, with the
// rpms signed, createrepo_c's repodata (no sqlite: its bytes differ per
// run) and repomd.xml.asc.
func yumRepos(ctx context.Context, r host.Runner, dir string, rpms []string, s *Signer, o Options) ([]string, error) {
	byArch := map[string][]string{}
	for _, p := range rpms {
		out, err := r.Run(ctx, nil, "rpm", "-qp", "--nosignature", "--qf", "%{ARCH}", p)
		if err != nil {
			return nil, fmt.Errorf("reading the architecture of %s: %w", p, err)
		}
		byArch[strings.TrimSpace(string(out))] = append(byArch[strings.TrimSpace(string(out))], p)
	}
	if noarch := byArch["noarch"]; len(noarch) > 0 {
		delete(byArch, "noarch")
		targets := o.RPMArches
		if len(targets) == 0 {
			targets = []string{"x86_64", "aarch64"}
		}
		for _, a := range targets {
			byArch[a] = append(byArch[a], noarch...)
		}
	}
	var arches []string
	for a := range byArch {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	for _, arch := range arches {
		repo := filepath.Join(dir, "rpm", arch)
		var copies []string
		for _, p := range byArch[arch] {
			c := filepath.Join(repo, "Packages", filepath.Base(p))
			if err := copyFile(p, c); err != nil {
				return nil, err
			}
			copies = append(copies, c)
		}
		if err := s.SignRPMs(ctx, copies...); err != nil {
			return nil, err
		}
		// primary.xml records each file's modification time; rpmsign
		// rewrote the file, so its mode is set again (a package holding
		// private keys stays 0600).
		for k, c := range copies {
			fi, err := os.Stat(byArch[arch][k])
			if err != nil {
				return nil, err
			}
			if err := os.Chmod(c, fi.Mode().Perm()); err != nil {
				return nil, err
			}
			if err := os.Chtimes(c, o.Date, o.Date); err != nil {
				return nil, err
			}
		}
		rev := strconv.FormatInt(o.Date.Unix(), 10)
		if _, err := r.Run(ctx, nil, "createrepo_c", "--quiet", "--no-database",
			"--revision", rev, "--set-timestamp-to-revision", "--simple-md-filenames", "--general-compress-type", "gz", repo); err != nil {
			return nil, fmt.Errorf("createrepo_c (%s): %w", arch, err)
		}
		md := filepath.Join(repo, "repodata", "repomd.xml")
		if err := s.Detach(ctx, md, md+".asc", true); err != nil {
			return nil, err
		}
	}
	return arches, nil
}

// copyFile copies with the source's permissions (a package holding
// private keys stays 0600).
func copyFile(from, to string) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	_ = os.Remove(to)
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
