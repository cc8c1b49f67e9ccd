package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/etcd-appliance/appliance/e2e/testbed"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// DistroDir is where the hosts see the distribution's packages and the
// older etcd builds PrepareDistro gathered.
const DistroDir = "/pkgs/distro"

// PrepareDistro gathers, on this machine, what hosts that ran their
// distribution's etcd had: Debian's etcd-server and etcd-client 3.4.23
// (and adduser, which minbase lacks) from the Debian archive, as users
// have them, and upstream etcd 3.5 and 3.6 built from their Go modules.
func PrepareDistro(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("apt-get", "download", "etcd-server", "etcd-client", "adduser")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download: %w: %s", err, out)
	}
	for _, r := range []string{etcdtest.Release35, etcdtest.Release36} {
		bin, err := etcdtest.Release(r)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "etcd-"+r), b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// distroHost is a host that ran its distribution's etcd.
type distroHost struct {
	ctx context.Context
	n   *testbed.Node
	pk  Packages
	// keys and revision as the old etcd served them.
	keys     string
	revision int64
	hashes   string
	dataDir  string
	logf     func(string, ...any)
}

// show logs a command's output, indented, for the run's transcript.
func (h *distroHost) show(what, out string) {
	h.logf("%s:", what)
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		h.logf("  %s", l)
	}
}

// installDistro installs Debian's etcd-server and etcd-client as apt
// would, its services allowed to start (start=false keeps them stopped).
func (h *distroHost) installDistro(start bool) error {
	if start {
		if _, err := h.n.Exec(h.ctx, "rm", "-f", "/usr/sbin/policy-rc.d"); err != nil {
			return err
		}
	}
	_, err := h.n.Sh(h.ctx, "dpkg -i "+DistroDir+"/adduser_*.deb && dpkg -i "+DistroDir+"/etcd-server_*.deb "+DistroDir+"/etcd-client_*.deb")
	return err
}

// ctl runs the host's etcdctl against its local member.
func (h *distroHost) ctl(args ...string) (string, error) {
	return h.n.Exec(h.ctx, append([]string{"etcdctl", "--endpoints=http://127.0.0.1:2379"}, args...)...)
}

// writeKeys puts 300 keys, overwrites 40 and deletes 40 (so that the
// revision is not the key count), and records what the member serves.
func (h *distroHost) writeKeys() error {
	script := `set -e; E=--endpoints=http://127.0.0.1:2379
for i in $(seq 1 300); do etcdctl $E put "app/key-$i" "value $i" >/dev/null; done
for i in $(seq 1 40); do etcdctl $E del "app/key-$i" >/dev/null; etcdctl $E put "app/key-$((i+100))" "again $i" >/dev/null; done`
	if out, err := h.n.Sh(h.ctx, script); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	var err error
	h.keys, h.revision, err = h.served("http://127.0.0.1:2379")
	return err
}

// writeKeysAt waits for the cluster to decide its version (data stopped
// before that does not say which release wrote it), then writes keys.
func (h *distroHost) writeKeysAt(version string) error {
	if err := Eventually(h.ctx, 30*time.Second, func() error {
		if v := h.clusterVersion(); v != version {
			return fmt.Errorf("cluster version %q, want %s", v, version)
		}
		return nil
	}); err != nil {
		return err
	}
	return h.writeKeys()
}

// installOursOnOldData installs this package over data of release and
// records the data's hashes as the install left them.
func (h *distroHost) installOursOnOldData(release string) error {
	if err := h.installOurs("holds data written by etcd " + release); err != nil {
		return err
	}
	var err error
	h.hashes, err = h.hashTree(h.dataDir)
	return err
}

// served is every key and value a member serves, and its revision.
func (h *distroHost) served(endpoint string) (string, int64, error) {
	keys, err := h.n.Exec(h.ctx, "etcdctl", "--endpoints="+endpoint, "get", "", "--from-key")
	if err != nil {
		return "", 0, err
	}
	out, err := h.n.Exec(h.ctx, "etcdctl", "--endpoints="+endpoint, "get", "app/", "--prefix", "--limit=1", "-w", "json")
	if err != nil {
		return "", 0, err
	}
	var r struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
		Count int64 `json:"count"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return "", 0, fmt.Errorf("%w: %s", err, out)
	}
	if r.Count != 260 {
		return "", 0, fmt.Errorf("%s serves %d app/ keys, want 260", endpoint, r.Count)
	}
	return keys, r.Header.Revision, nil
}

// hashTree is every file under dir with its sha256.
func (h *distroHost) hashTree(dir string) (string, error) {
	out, err := h.n.Sh(h.ctx, "cd "+dir+" && find . -type f -print0 | sort -z | xargs -0 sha256sum")
	if err != nil {
		return "", err
	}
	if !strings.Contains(out, "./member/snap/db\n") || !strings.Contains(out, ".wal\n") {
		return "", fmt.Errorf("%s holds no backend or no WAL:\n%s", dir, out)
	}
	return out, nil
}

// clusterVersion asks the member's /version (bash, as minbase has no
// HTTP client) for the cluster version it decided.
func (h *distroHost) clusterVersion() string {
	out, err := h.n.Exec(h.ctx, "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/2379 && printf 'GET /version HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
	if err != nil {
		return ""
	}
	_, body, _ := strings.Cut(out, "\r\n\r\n")
	var v struct {
		Cluster string `json:"etcdcluster"`
	}
	if json.Unmarshal([]byte(body), &v) != nil || v.Cluster == "not_decided" {
		return ""
	}
	return v.Cluster
}

// installOurs installs this package from the file, as users do until our
// repository exists: it takes etcd-server's place. The install must say
// what it found and must not start etcd.
func (h *distroHost) installOurs(expectOutput string) error {
	deb, err := glob(h.ctx, h.n, h.pk.deb(h.pk.V1))
	if err != nil {
		return err
	}
	out, err := h.n.Exec(h.ctx, "dpkg", "-i", deb)
	if err != nil {
		return err
	}
	h.show("dpkg -i "+filepath.Base(deb), out)
	for _, want := range []string{expectOutput, "never purge it"} {
		if err := expect(out, want, "the install's output"); err != nil {
			return err
		}
	}
	if st, err := h.n.Exec(h.ctx, "dpkg-query", "-W", "-f=${Status}", "etcd-server"); err == nil && strings.Contains(st, "installed") && !strings.Contains(st, "config-files") {
		return fmt.Errorf("etcd-server is still installed: %s", st)
	}
	if out, err := h.n.Exec(h.ctx, "systemctl", "cat", "etcd.service"); err != nil || !strings.Contains(out, "Type=notify") {
		return fmt.Errorf("this package's etcd.service is not in place after replacing etcd-server: %v\n%s", err, out)
	}
	return nil
}

// refused checks that etcd refuses the old data once, with its exit code
// and a STATUS naming the release, and leaves the data as it was.
func (h *distroHost) refused(release string) error {
	if _, err := h.n.Exec(h.ctx, "systemctl", "start", "etcd"); err == nil {
		return errors.New("systemctl start etcd succeeded on the old data")
	}
	out, _ := h.n.Exec(h.ctx, "systemctl", "show", "etcd", "--property=ActiveState,ExecMainStatus,NRestarts,StatusText")
	h.show("systemctl show etcd", out)
	for _, want := range []string{"ActiveState=failed", "ExecMainStatus=80", "NRestarts=0", "StatusText=refusing the data dir: ", "written by etcd " + release} {
		if !strings.Contains(out, want) {
			return fmt.Errorf("want %q in:\n%s", want, out)
		}
	}
	journal, _ := h.n.Exec(h.ctx, "journalctl", "-u", "etcd", "--no-pager", "-o", "cat")
	if err := expect(journal, "etcd-installer migrate", "the journal"); err != nil {
		return err
	}
	after, err := h.hashTree(h.dataDir)
	if err != nil {
		return err
	}
	if after != h.hashes {
		return fmt.Errorf("the old data changed:\nbefore\n%s\nafter\n%s", h.hashes, after)
	}
	return nil
}

// migrate runs a dry run (nothing changes), then etcd-installer migrate,
// starts etcd and checks every key and value, the revision, the old
// settings and the kept old dir.
func (h *distroHost) migrate(wantOutput, endpoint string) error {
	etcBefore, _ := h.n.Sh(h.ctx, "find /etc /var/lib/etcd -type f -print0 | sort -z | xargs -0 sha256sum")
	out, err := h.n.Exec(h.ctx, "etcd-installer", "migrate", "--dry-run")
	if err != nil {
		return err
	}
	if err := expect(out, "+ETCD_", "the dry run's settings diff"); err != nil {
		return err
	}
	if etcAfter, _ := h.n.Sh(h.ctx, "find /etc /var/lib/etcd -type f -print0 | sort -z | xargs -0 sha256sum"); etcAfter != etcBefore {
		return errors.New("the dry run changed files under /etc or /var/lib/etcd")
	}
	start := time.Now()
	if out, err = h.n.Exec(h.ctx, "etcd-installer", "migrate"); err != nil {
		return err
	}
	h.show(fmt.Sprintf("etcd-installer migrate (%s)", time.Since(start).Round(time.Millisecond)), out)
	if err := expect(out, wantOutput, "migrate's output"); err != nil {
		return err
	}
	if got := statLine(h.ctx, h.n, h.dataDir); got != "700 etcd:etcd" {
		return fmt.Errorf("the migrated data dir is %s, want 700 etcd:etcd", got)
	}
	if _, err := h.n.Exec(h.ctx, "systemctl", "start", "etcd"); err != nil {
		return err
	}
	if _, _, _, st := unitState(h.ctx, h.n, "etcd.service"); !strings.HasPrefix(st, "serving") {
		return fmt.Errorf("STATUS %q", st)
	}
	keys, rev, err := h.served(endpoint)
	if err != nil {
		return err
	}
	if keys != h.keys || rev != h.revision {
		return fmt.Errorf("etcd 3.7 serves %d bytes of keys at revision %d; the old etcd served %d at %d", len(keys), rev, len(h.keys), h.revision)
	}
	return nil
}

// Distro is issue 18's suite: hosts that ran their distribution's etcd get
// this package; etcd refuses data it would damage, and migrate brings
// every key back with the old settings.
func Distro(ctx context.Context, r *Run, tb *testbed.Testbed, pk Packages) {
	boot := func(name string, octet int) *distroHost {
		var n *testbed.Node
		if r.Step("boot "+name, func() (err error) { n, err = tb.AddNode(ctx, name, octet); return err }) != nil {
			return nil
		}
		return &distroHost{ctx: ctx, n: n, pk: pk, dataDir: "/var/lib/etcd/default", logf: r.Logf}
	}
	if h := boot("dist34", 33); h != nil {
		distro34(r, h)
	}
	if h := boot("dist35", 34); h != nil {
		distro35(r, h)
	}
	if h := boot("dist36", 35); h != nil {
		distro36(r, h)
	}
}

func distro34(r *Run, h *distroHost) {
	if r.Step("distro 3.4: Debian's etcd-server and etcd-client 3.4.23 installed and started by their package; settings edited; keys written", func() error {
		if err := h.installDistro(true); err != nil {
			return err
		}
		defaults := fmt.Sprintf("# Edited by the operator.\nETCD_LISTEN_CLIENT_URLS=\"http://127.0.0.1:2379,http://%s:2379\"\n"+
			"ETCD_ADVERTISE_CLIENT_URLS=\"http://%s:2379\"\nETCD_SNAPSHOT_COUNT=\"5000\"\nETCD_AUTO_COMPACTION_RETENTION=\"1\"\n", h.n.IP, h.n.IP)
		if err := h.n.WriteFile("etc/default/etcd", []byte(defaults), 0o644); err != nil {
			return err
		}
		if _, err := h.n.Exec(h.ctx, "systemctl", "restart", "etcd"); err != nil {
			return err
		}
		if err := waitActive(h.ctx, h.n, "etcd.service", 30*time.Second); err != nil {
			return err
		}
		return h.writeKeysAt("3.4.0")
	}) != nil {
		return
	}
	if r.Step("distro 3.4: our deb replaces etcd-server (dpkg -i): the install names the data and `etcd-installer migrate`, starts nothing", func() error {
		return h.installOursOnOldData("3.4")
	}) != nil {
		return
	}
	r.Step("distro 3.4: systemctl start etcd fails once with exit 80 (NRestarts 0) and says why; the old data is byte-identical", func() error {
		return h.refused("3.4")
	})
	r.Step("distro 3.4: etcd-installer migrate (dry run first): every key and the revision back under 3.7, on the old settings; the old dir kept", func() error {
		if err := h.migrate("migrated: 260 keys", "http://"+h.n.IP+":2379"); err != nil {
			return err
		}
		conf, _ := h.n.ReadFile("etc/etcd/etcd.conf")
		if err := expect(string(conf), "ETCD_SNAPSHOT_COUNT=5000", "the migrated etcd.conf"); err != nil {
			return err
		}
		kept, err := h.n.Sh(h.ctx, "ls -d /var/lib/etcd/default.etcd-3.4-*")
		if err != nil {
			return err
		}
		if got, _ := h.hashTree(strings.TrimSpace(kept)); got != h.hashes {
			return errors.New("the kept old dir is not the old data byte for byte")
		}
		return nil
	})
}

func distro35(r *Run, h *distroHost) {
	if r.Step("distro 3.5: Debian's etcd-server upgraded by hand to upstream etcd 3.5 (binary replaced); keys written", func() error {
		if err := h.installDistro(true); err != nil {
			return err
		}
		if _, err := h.n.Sh(h.ctx, "systemctl stop etcd && cp "+DistroDir+"/etcd-"+etcdtest.Release35+" /usr/bin/etcd && systemctl start etcd"); err != nil {
			return err
		}
		return h.writeKeysAt("3.5.0")
	}) != nil {
		return
	}
	if r.Step("distro 3.5: our deb replaces etcd-server; the install names the data", func() error {
		return h.installOursOnOldData("3.5")
	}) != nil {
		return
	}
	r.Step("distro 3.5: systemctl start etcd fails once with exit 80; the old data is byte-identical", func() error {
		return h.refused("3.5")
	})
	r.Step("distro 3.5: etcd-installer migrate: every key and the revision back under 3.7", func() error {
		return h.migrate("migrated: 260 keys", "http://127.0.0.1:2379")
	})
}

func distro36(r *Run, h *distroHost) {
	if r.Step("distro 3.6: etcd 3.6 on Debian's etcd-server unit (binary replaced before its first start); keys written", func() error {
		if err := h.installDistro(false); err != nil {
			return err
		}
		if _, err := h.n.Sh(h.ctx, "cp "+DistroDir+"/etcd-"+etcdtest.Release36+" /usr/bin/etcd && systemctl start etcd"); err != nil {
			return err
		}
		return h.writeKeysAt("3.6.0")
	}) != nil {
		return
	}
	if r.Step("distro 3.6: our deb replaces etcd-server; the install names the settings", func() error {
		return h.installOurs("found the settings of debian etcd")
	}) != nil {
		return
	}
	r.Step("distro 3.6: not refused: systemctl start etcd serves the 3.6 data under 3.7 (the supported one-minor upgrade)", func() error {
		if _, err := h.n.Exec(h.ctx, "systemctl", "start", "etcd"); err != nil {
			return err
		}
		keys, rev, err := h.served("http://127.0.0.1:2379")
		if err != nil {
			return err
		}
		if keys != h.keys || rev != h.revision {
			return fmt.Errorf("3.7 serves %d bytes at %d, 3.6 served %d at %d", len(keys), rev, len(h.keys), h.revision)
		}
		_, err = h.n.Exec(h.ctx, "systemctl", "stop", "etcd")
		return err
	})
	r.Step("distro 3.6: etcd-installer migrate carries the settings only (the data stays as it is)", func() error {
		return h.migrate("the data dir needs no migration", "http://127.0.0.1:2379")
	})
}
