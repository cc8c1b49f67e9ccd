package e2e

// The repository suite: what users type. make release's repositories
// (built here by the same code, with the throw-away key) are served by a
// host over HTTP; a Debian host runs `apt-get install etcd` and later
// `apt-get upgrade` through them, a host with dnf does the same with
// gpgcheck and repo_gpgcheck on, and tampered repositories are refused by
// the real clients.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/cli/installer"
	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/packaging/repo"
)

// RepoDir is where every host sees the repositories (read-only); the
// server serves RepoDir/current, a link the test moves between them.
const RepoDir = "/srv/repo"

const repoOctet = 50

// repoSuite holds the repositories built on this machine, under dir
// (bound at RepoDir in every host).
type repoSuite struct {
	ctx  context.Context
	r    *Run
	tb   *testbed.Testbed
	pk   Packages
	dir  string
	host map[string]string // host path of the v1 and v2 package dirs
	url  string
}

// Repo runs the repository suite; dir is bound at RepoDir; v1 and v2 are
// the package directories on this machine.
func Repo(ctx context.Context, r *Run, tb *testbed.Testbed, pk Packages, dir, v1, v2 string) {
	s := &repoSuite{ctx: ctx, r: r, tb: tb, pk: pk, dir: dir, host: map[string]string{"v1": v1, "v2": v2},
		url: fmt.Sprintf("http://%s.%d:8080", testbed.Subnet, repoOctet)}
	if r.Step("repo: make release's signed repositories of revision 1 and of revision 2, and three tampered copies", s.build) != nil {
		return
	}
	var server, deb, el *testbed.Node
	if r.Step("repo: a host serves the repository over HTTP", func() (err error) {
		if server, err = tb.AddNode(ctx, "reposrv", repoOctet); err != nil {
			return err
		}
		if err := s.use("r1"); err != nil {
			return err
		}
		if _, err := server.Exec(ctx, "systemd-run", "--unit", "repo-http", "python3", "-m", "http.server", "8080",
			"--bind", server.IP, "--directory", RepoDir+"/current"); err != nil {
			return err
		}
		return Eventually(ctx, 20*time.Second, func() error {
			_, err := server.Exec(ctx, "python3", "-c", "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]).read()", s.url+"/dists/stable/InRelease")
			return err
		})
	}) != nil {
		return
	}
	if r.Step("repo: boot a Debian host and a host with dnf", func() (err error) {
		if deb, err = tb.AddNode(ctx, "repodeb", repoOctet+1); err != nil {
			return err
		}
		el, err = tb.AddNode(ctx, "repoel", repoOctet+2)
		return err
	}) != nil {
		return
	}
	r.Step("repo: apt-get update && apt-get install etcd, by name, signature checked; it serves", func() error { return s.aptInstall(deb) })
	r.Step("repo: dnf install etcd, by name, gpgcheck and repo_gpgcheck on; scriptlets ran; it serves", func() error { return s.dnfInstall(el) })
	if r.Step("repo: revision 2 published (the served link moves)", func() error { return s.use("r2") }) == nil {
		r.Step("repo: apt-get upgrade moves to revision 2: edited conffile kept, etcd restarted, data kept", func() error { return s.aptUpgrade(deb) })
		r.Step("repo: dnf upgrade moves to revision 2: edited config kept, etcd restarted, data kept", func() error { return s.dnfUpgrade(el) })
	}
	for _, tm := range []struct{ dir, what, aptWant, dnfWant string }{
		{"t-pool", "a deb and an rpm changed in the pool (same size)", "Hash Sum mismatch", "checksum doesn't match"},
		// Packages.xz no longer matches the signed Release: by size or by
		// hash, depending on how the edit compresses; both refuse it.
		{"t-index", "Packages and repomd.xml changed after signing", "Hash Sum mismatch|File has unexpected size", "GPG"},
		{"t-key", "the repository signed by another key", "NO_PUBKEY", "GPG"},
	} {
		r.Step("repo: "+tm.what+": apt-get and dnf refuse, nothing installed", func() error { return s.tampered(deb, el, tm.dir, tm.aptWant, tm.dnfWant) })
	}
	r.Step("repo: etcd-installer package --repo with the operator's key, served privately; apt-get install etcd-node-reponode on a fresh host brings up its member",
		func() error { return s.nodeRepo(server) })
}

// nodeRepo builds a per-host repository with an operator's key (made
// here), serves it beside the etcd repository, and installs a host from
// both by name.
func (s *repoSuite) nodeRepo(server *testbed.Node) error {
	ctx := s.ctx
	work := filepath.Join(s.dir, "..", "node-work")
	home := filepath.Join(work, "gnupg")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	gpg := []string{"gpg", "--batch", "--homedir", home, "--pinentry-mode", "loopback", "--passphrase", ""}
	if _, err := (host.LocalRunner{}).Run(ctx, nil, append(gpg, "--quick-gen-key", "Ops <ops@example.invalid>", "rsa3072", "sign", "never")...); err != nil {
		return err
	}
	secret, err := (host.LocalRunner{}).Run(ctx, nil, append(gpg, "--armor", "--export-secret-keys")...)
	if err != nil {
		return err
	}
	(host.LocalRunner{}).Run(ctx, nil, "gpgconf", "--homedir", home, "--kill", "gpg-agent")
	key := filepath.Join(work, "ops.asc")
	if err := os.WriteFile(key, secret, 0o600); err != nil {
		return err
	}
	ip := fmt.Sprintf("%s.%d", testbed.Subnet, repoOctet+3)
	inv := filepath.Join(work, "node.toml")
	os.WriteFile(inv, []byte("version = 1\n[cluster]\nname = \"repo\"\ntls = \"off\"\n[[member]]\nname = \"reponode\"\naddress = \""+ip+"\"\n"), 0o644)
	url := fmt.Sprintf("http://%s:8081", server.IP)
	os.Setenv(repo.KeyEnv, key)
	var out, errb bytes.Buffer
	code := installer.Main([]string{"package", inv, "--out", filepath.Join(work, "pkgs"), "--repo", filepath.Join(s.dir, "node"), "--repo-url", url}, &out, &errb)
	os.Unsetenv(repo.KeyEnv)
	if code != 0 {
		return fmt.Errorf("package --repo: %s%s", out.String(), errb.String())
	}
	s.r.Logf("%s", firstLineWith(out.String(), "signed apt and yum repository"))
	if _, err := server.Exec(ctx, "systemd-run", "--unit", "repo-node-http", "python3", "-m", "http.server", "8081",
		"--bind", server.IP, "--directory", RepoDir+"/node"); err != nil {
		return err
	}
	n, err := s.tb.AddNode(ctx, "reponode", repoOctet+3)
	if err != nil {
		return err
	}
	for _, f := range []struct{ from, to string }{
		{"r2/" + repo.Keyring, "usr/share/keyrings/" + repo.Keyring},
		{"r2/etcd.sources", "etc/apt/sources.list.d/etcd.sources"},
		{"node/etcd-node-archive-keyring.gpg", "usr/share/keyrings/etcd-node-archive-keyring.gpg"},
		{"node/etcd-node.sources", "etc/apt/sources.list.d/etcd-node.sources"},
	} {
		data, err := os.ReadFile(filepath.Join(s.dir, f.from))
		if err != nil {
			return err
		}
		if err := n.WriteFile(f.to, data, 0o644); err != nil {
			return err
		}
	}
	if _, err := n.Sh(ctx, "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources"); err != nil {
		return err
	}
	if err := Eventually(ctx, 20*time.Second, func() error { _, err := n.Exec(ctx, "apt-get", "update"); return err }); err != nil {
		return err
	}
	o, err := n.Exec(ctx, "apt-get", "install", "-y", "etcd-node-reponode")
	if err != nil {
		return err
	}
	s.r.Logf("%s", lastLines(o, 2))
	if err := waitActive(ctx, n, "etcd.service", 60*time.Second); err != nil {
		return err
	}
	return kv(ctx, n, "repo/node", "from the per-host repository")
}

// build makes r1 and r2 with the release code and the tampered copies
// of r2.
func (s *repoSuite) build() error {
	work := filepath.Join(s.dir, "..", "repo-work")
	// Each release has its own date, as each has its own commit.
	date := time.Unix(1700000000, 0)
	for k, rel := range []struct{ name, pkgs string }{{"r1", s.host["v1"]}, {"r2", s.host["v2"]}} {
		var out bytes.Buffer
		// Revision 1 was published an hour before revision 2.
		published := time.Now().Add(time.Duration(k-1) * time.Hour)
		if err := repo.Release(s.ctx, rel.pkgs, filepath.Join(s.dir, rel.name), s.url, work, date.Add(time.Duration(k)*24*time.Hour), published, &out, io.Discard); err != nil {
			return fmt.Errorf("%s: %w", rel.name, err)
		}
	}
	date = date.Add(24 * time.Hour)
	// A test-only repository of what Debian's userland lacks in rpm form
	// (unsigned; the etcd repository keeps both checks on).
	shim, err := RPMShim(s.dir, s.pk.Arch)
	if err != nil {
		return err
	}
	compat := filepath.Join(s.dir, "compat")
	os.MkdirAll(compat, 0o755)
	if err := os.Rename(shim, filepath.Join(compat, filepath.Base(shim))); err != nil {
		return err
	}
	if out, err := exec.Command("createrepo_c", "--quiet", "--no-database", compat).CombinedOutput(); err != nil {
		return fmt.Errorf("createrepo_c: %w: %s", err, out)
	}
	r2 := filepath.Join(s.dir, "r2")
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[s.pk.Arch]
	// A package changed in place, same size (one byte of its payload):
	// only the hashes can tell.
	if err := cpTree(r2, filepath.Join(s.dir, "t-pool")); err != nil {
		return err
	}
	for _, pat := range []string{"t-pool/pool/main/e/etcd/etcd_*_" + s.pk.Arch + ".deb", "t-pool/rpm/" + arch + "/Packages/etcd-*." + arch + ".rpm"} {
		dst, _ := filepath.Glob(filepath.Join(s.dir, pat))
		if len(dst) != 1 {
			return fmt.Errorf("tamper: %s matches %v", pat, dst)
		}
		data, _ := os.ReadFile(dst[0])
		data[len(data)-100] ^= 0xff
		if err := os.WriteFile(dst[0], data, 0o644); err != nil {
			return err
		}
	}
	// Indexes changed after signing.
	if err := cpTree(r2, filepath.Join(s.dir, "t-index")); err != nil {
		return err
	}
	bin := filepath.Join(s.dir, "t-index/dists/stable/main/binary-"+s.pk.Arch)
	pk, _ := os.ReadFile(filepath.Join(bin, "Packages"))
	os.WriteFile(filepath.Join(bin, "Packages"), bytes.Replace(pk, []byte("Priority: optional"), []byte("Priority: required"), 1), 0o644)
	for _, z := range [][]string{{"gzip", "-9nkf"}, {"xz", "-kf"}} {
		if _, err := (host.LocalRunner{}).Run(s.ctx, nil, append(z, filepath.Join(bin, "Packages"))...); err != nil {
			return err
		}
	}
	md := filepath.Join(s.dir, "t-index/rpm", arch, "repodata/repomd.xml")
	data, _ := os.ReadFile(md)
	os.WriteFile(md, bytes.Replace(data, []byte("<revision>"), []byte("<revision>1"), 1), 0o644)
	// Another key: r2 rebuilt with a second throw-away key, the real key
	// files kept (what a mirror compromised without the key would serve).
	var out bytes.Buffer
	if err := repo.Release(s.ctx, s.host["v2"], filepath.Join(s.dir, "t-key"), s.url, filepath.Join(s.dir, "..", "repo-work-other"), date, time.Now(), &out, io.Discard); err != nil {
		return err
	}
	for _, k := range []string{repo.Keyring, repo.RPMKey} {
		data, _ := os.ReadFile(filepath.Join(r2, k))
		os.WriteFile(filepath.Join(s.dir, "t-key", k), data, 0o644)
	}
	return nil
}

func cpTree(from, to string) error {
	out, err := exec.Command("cp", "-a", from, to).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", from, to, err, out)
	}
	return nil
}

// use points the served link at one of the repositories.
func (s *repoSuite) use(name string) error {
	link := filepath.Join(s.dir, "current")
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(name, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// aptSetup gives the Debian host the keyring and the .sources snippet, as
// README says, and nothing else to fetch from (the test network has no
// mirror).
func (s *repoSuite) aptSetup(n *testbed.Node) error {
	for _, f := range []struct{ from, to string }{
		{"r1/" + repo.Keyring, "usr/share/keyrings/" + repo.Keyring},
		{"r1/etcd.sources", "etc/apt/sources.list.d/etcd.sources"},
	} {
		data, err := os.ReadFile(filepath.Join(s.dir, f.from))
		if err != nil {
			return err
		}
		if err := n.WriteFile(f.to, data, 0o644); err != nil {
			return err
		}
	}
	_, err := n.Sh(s.ctx, "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources")
	return err
}

func (s *repoSuite) aptInstall(n *testbed.Node) error {
	if err := s.aptSetup(n); err != nil {
		return err
	}
	out, err := n.Exec(s.ctx, "apt-get", "update")
	if err != nil {
		return err
	}
	if strings.Contains(out, "W:") {
		return fmt.Errorf("apt-get update warned:\n%s", out)
	}
	if out, err = n.Exec(s.ctx, "apt-get", "install", "-y", "etcd"); err != nil {
		return err
	}
	s.r.Logf("%s", lastLines(out, 3))
	if v, _ := n.Exec(s.ctx, "dpkg-query", "-W", "-f=${Version}", "etcd"); !strings.HasSuffix(v, "-1") {
		return fmt.Errorf("installed %q", v)
	}
	return s.serves(n, "repo/apt")
}

func (s *repoSuite) serves(n *testbed.Node, key string) error {
	if _, err := n.Exec(s.ctx, "systemctl", "start", "etcd"); err != nil {
		return err
	}
	if err := waitActive(s.ctx, n, "etcd.service", 30*time.Second); err != nil {
		return err
	}
	if err := kv(s.ctx, n, key, "v1"); err != nil {
		return err
	}
	_, err := n.Sh(s.ctx, "echo ETCD_LOG_LEVEL=warn >> /etc/etcd/etcd.conf")
	return err
}

// dnfSetup gives the host the etcd .repo snippet (both checks on) and the
// test-only compatibility repository.
func (s *repoSuite) dnfSetup(n *testbed.Node) error {
	data, err := os.ReadFile(filepath.Join(s.dir, "r1/etcd.repo"))
	if err != nil {
		return err
	}
	if !bytes.Contains(data, []byte("gpgcheck=1")) || !bytes.Contains(data, []byte("repo_gpgcheck=1")) {
		return fmt.Errorf("etcd.repo without both checks:\n%s", data)
	}
	if err := n.WriteFile("etc/yum.repos.d/etcd.repo", data, 0o644); err != nil {
		return err
	}
	compat := "[compat]\nname=test only: Debian's userland in rpm form\nbaseurl=file://" + RepoDir + "/compat\nenabled=1\ngpgcheck=0\n"
	return n.WriteFile("etc/yum.repos.d/compat.repo", []byte(compat), 0o644)
}

// dnf runs dnf non-interactively for a release it cannot detect on
// Debian.
func (s *repoSuite) dnf(n *testbed.Node, args ...string) (string, error) {
	return n.Exec(s.ctx, append([]string{"dnf", "-y", "--releasever", "9", "--setopt=install_weak_deps=0"}, args...)...)
}

func (s *repoSuite) dnfInstall(n *testbed.Node) error {
	if err := s.dnfSetup(n); err != nil {
		return err
	}
	out, err := s.dnf(n, "install", "etcd")
	if err != nil {
		return err
	}
	s.r.Logf("%s", lastLines(out, 3))
	if v, _ := n.Exec(s.ctx, "rpm", "-q", "--qf", "%{RELEASE}", "etcd"); v != "1" {
		return fmt.Errorf("installed release %q", v)
	}
	if out, err := n.Exec(s.ctx, "rpm", "-qi", "etcd"); err != nil || !strings.Contains(firstLineWith(out, "Signature"), "Key ID") {
		return fmt.Errorf("the installed rpm carries no signature: %q %v", firstLineWith(out, "Signature"), err)
	}
	if err := checkUser(s.ctx, n); err != nil {
		return err
	}
	return s.serves(n, "repo/dnf")
}

func checkUser(ctx context.Context, n *testbed.Node) error {
	if _, err := n.Exec(ctx, "getent", "passwd", "etcd"); err != nil {
		return fmt.Errorf("the scriptlets did not create the etcd user: %w", err)
	}
	return nil
}

// upgraded checks a member after an upgrade: release 2, the edit kept,
// a new process, the data there.
func (s *repoSuite) upgraded(n *testbed.Node, pid, version, key string) error {
	if !strings.HasSuffix(strings.TrimSpace(version), "2") {
		return fmt.Errorf("after the upgrade: %q", version)
	}
	conf, _ := n.ReadFile("etc/etcd/etcd.conf")
	if !strings.Contains(string(conf), "ETCD_LOG_LEVEL=warn") {
		return fmt.Errorf("the upgrade replaced the edited etcd.conf")
	}
	if err := waitActive(s.ctx, n, "etcd.service", 30*time.Second); err != nil {
		return err
	}
	if _, _, newPID, _ := unitState(s.ctx, n, "etcd.service"); newPID == pid {
		return fmt.Errorf("etcd was not restarted by the upgrade")
	}
	return readBack(s.ctx, n, key, "v1")
}

func (s *repoSuite) aptUpgrade(n *testbed.Node) error {
	_, _, pid, _ := unitState(s.ctx, n, "etcd.service")
	if _, err := n.Exec(s.ctx, "apt-get", "update"); err != nil {
		return err
	}
	out, err := n.Exec(s.ctx, "apt-get", "upgrade", "-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")
	if err != nil {
		return err
	}
	s.r.Logf("%s", lastLines(out, 2))
	v, _ := n.Exec(s.ctx, "dpkg-query", "-W", "-f=${Version}", "etcd")
	return s.upgraded(n, pid, v, "repo/apt")
}

func (s *repoSuite) dnfUpgrade(n *testbed.Node) error {
	_, _, pid, _ := unitState(s.ctx, n, "etcd.service")
	out, err := s.dnf(n, "--refresh", "upgrade", "etcd")
	if err != nil {
		return err
	}
	s.r.Logf("%s", lastLines(out, 2))
	v, _ := n.Exec(s.ctx, "rpm", "-q", "--qf", "%{RELEASE}", "etcd")
	return s.upgraded(n, pid, v, "repo/dnf")
}

// tampered serves a tampered copy of revision 2 and has each client
// reinstall etcd from it: each must refuse, and revision 2 stays.
func (s *repoSuite) tampered(deb, el *testbed.Node, dir, aptWant, dnfWant string) error {
	if err := s.use(dir); err != nil {
		return err
	}
	defer s.use("r2")
	// What a host that has not fetched revision 2's indexes yet sees.
	if _, err := deb.Sh(s.ctx, "rm -rf /var/lib/apt/lists/* && apt-get clean"); err != nil {
		return err
	}
	out, err := deb.Exec(s.ctx, "apt-get", "update")
	if err == nil {
		out, err = deb.Exec(s.ctx, "apt-get", "install", "-y", "--reinstall", "etcd")
	}
	var said string
	for _, want := range strings.Split(aptWant, "|") {
		if err != nil && strings.Contains(out+err.Error(), want) {
			said = firstLineWith(err.Error(), want)
		}
	}
	if said == "" {
		return fmt.Errorf("apt-get did not refuse with %q: %v\n%s", aptWant, err, out)
	}
	s.r.Logf("apt-get: %s", said)
	if _, err := el.Exec(s.ctx, "dnf", "clean", "all"); err != nil {
		return err
	}
	// A repository that fails its checks is an error, not skipped.
	out, err = s.dnf(el, "--setopt=skip_if_unavailable=False", "reinstall", "etcd")
	if err == nil || !strings.Contains(out+err.Error(), dnfWant) {
		return fmt.Errorf("dnf did not refuse with %q: %v\n%s", dnfWant, err, out)
	}
	s.r.Logf("dnf: %s", firstLineWith(err.Error(), dnfWant))
	if v, _ := deb.Exec(s.ctx, "dpkg-query", "-W", "-f=${Version}", "etcd"); !strings.HasSuffix(v, "-2") {
		return fmt.Errorf("the Debian host now has %q", v)
	}
	if v, _ := el.Exec(s.ctx, "rpm", "-q", "--qf", "%{RELEASE}", "etcd"); v != "2" {
		return fmt.Errorf("the dnf host now has release %q", v)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
