// Package migrate takes over a host that ran its distribution's etcd
// (Debian's and Ubuntu's etcd-server, EL's etcd, the setups older guides
// describe): it finds that etcd's settings and data, carries the settings
// over into /etc/etcd/etcd.conf through the server's own parser, and
// restores the old key space into a data dir etcd 3.7 opens, verified key
// by key against the old backend, which it keeps untouched.
package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/etcd-appliance/appliance/datadir"
	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/layout"
)

// Where distributions keep etcd's settings and data.
const (
	DebianDefaults = "/etc/default/etcd"
	DebianDataDir  = "/var/lib/etcd/default"
	ELDataDir      = "/var/lib/etcd/default.etcd"
	// ownMarker starts every etcd.conf this appliance writes (the
	// package's default and apply's); another is a distribution's.
	ownMarker = "# /etc/etcd/etcd.conf: "
	// packageMarker starts the package's default etcd.conf (and
	// migrate's); apply's names the member instead.
	packageMarker = ownMarker + "the settings of etcd.service"
	// migratedMarker is in every etcd.conf migrate writes.
	migratedMarker = "# Migrated by `etcd-installer migrate`"
)

// ErrNothing means no distribution's etcd was found on this host.
var ErrNothing = errors.New("no distribution etcd found")

// Source is a distribution's etcd found on this host.
type Source struct {
	// Style is "debian" (Debian and Ubuntu etcd-server) or "el".
	Style string
	// ConfigFile is where its settings were read ("" when it ran on its
	// unit's defaults).
	ConfigFile string
	// Env are its ETCD_* settings as that etcd read them, its unit's
	// defaults included.
	Env []string
	// DataDir and Name are where it kept its data (an absolute path) and
	// its member name; WALDir its WAL when kept apart ("" when not).
	DataDir, Name, WALDir string
	// Warnings are what reading its files skipped.
	Warnings []string
	// Data is what the data dir holds.
	Data datadir.Info
	// UnitFiles are what an administrator wrote for the distribution's
	// etcd.service under /etc/systemd/system, which systemd applies to
	// this package's unit too.
	UnitFiles []UnitFile
}

// UnitFile is a drop-in or a whole unit under /etc/systemd/system.
type UnitFile struct {
	Path string
	// Replaces: it runs another command than this package's server (an
	// ExecStart= line, or a whole unit), so migrate moves it aside.
	Replaces bool
	// SetsDir: it names the data or WAL dir (Environment=ETCD_DATA_DIR=,
	// or an EnvironmentFile=), which migrate does not read.
	SetsDir bool
}

// Where administrators change etcd.service.
const (
	DropInDir    = "/etc/systemd/system/etcd.service.d"
	UnitOverride = "/etc/systemd/system/etcd.service"
)

// unitFiles finds the administrator's changes to etcd.service. A link (to
// /dev/null: masked; or a unit enabled by path) is the administrator's
// business and left alone.
func unitFiles(f host.FS) ([]UnitFile, error) {
	var out []UnitFile
	if fi, err := f.Stat(UnitOverride); err == nil && fi.Mode().IsRegular() {
		out = append(out, UnitFile{Path: UnitOverride, Replaces: true})
	}
	entries, err := f.ReadDir(DropInDir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".conf") || !e.Type().IsRegular() {
			continue
		}
		p := path.Join(DropInDir, e.Name())
		b, err := f.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, UnitFile{Path: p, Replaces: setsExecStart(b),
			SetsDir: bytes.Contains(b, []byte("ETCD_DATA_DIR")) || bytes.Contains(b, []byte("ETCD_WAL_DIR")) || bytes.Contains(b, []byte("EnvironmentFile"))})
	}
	return out, nil
}

// setsExecStart reports whether a drop-in sets ExecStart= in [Service].
func setsExecStart(b []byte) bool {
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && section == "[Service]" && strings.TrimSpace(k) == "ExecStart" && strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// Find looks for a distribution's etcd on the host f reaches: a Debian
// /etc/default/etcd or data in /var/lib/etcd/default, or an
// /etc/etcd/etcd.conf that this appliance did not write (EL's, with its
// quoted values) or data in /var/lib/etcd/default.etcd. hostname is what
// Debian's unit names the member (ETCD_NAME=%H).
//
// Data alone counts only when this appliance's configuration does not
// already use it, or when an older release wrote it: the package's
// default data dir is Debian's. A host whose /etc/etcd/etcd.conf was
// written by migrate (done) or by apply (an inventory manages it) has
// nothing to migrate.
func Find(f host.FS, hostname string) (Source, error) {
	conf, err := f.ReadFile(layout.EtcdConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Source{}, err
	}
	ours := bytes.HasPrefix(conf, []byte(ownMarker))
	switch {
	case ours && bytes.Contains(conf, []byte(migratedMarker)):
		return Source{}, fmt.Errorf("%w: this host was migrated already (%s says so); the distribution's files and the old data dir are kept as they were",
			ErrNothing, layout.EtcdConf)
	case ours && !bytes.HasPrefix(conf, []byte(packageMarker)):
		return Source{}, fmt.Errorf("%w: %s was written by `etcd-installer apply`: an inventory manages this host, and migrate leaves it alone",
			ErrNothing, layout.EtcdConf)
	}
	if src, ok, err := findDebian(f, hostname, ours); ok || err != nil {
		return src, err
	}
	if src, ok, err := findEL(f, conf, ours); ok || err != nil {
		return src, err
	}
	return Source{}, fmt.Errorf("%w: looked for %s, an %s not written by this package, %s and %s",
		ErrNothing, DebianDefaults, layout.EtcdConf, DebianDataDir, ELDataDir)
}

// theirsData reports whether the data dir at dir counts as a
// distribution's when no settings of theirs are left: always, unless this
// appliance's configuration is in place and a release it opens wrote it.
func theirsData(f host.FS, dir string, ours bool) bool {
	if !exists(f, path.Join(dir, "member")) {
		return false
	}
	if !ours {
		return true
	}
	info, err := host.InspectDataDir(f, dir)
	return err != nil || info.V2 || info.OlderThan(3, 6)
}

func findDebian(f host.FS, hostname string, ours bool) (Source, bool, error) {
	data, err := f.ReadFile(DebianDefaults)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Source{}, false, err
	}
	if err != nil && !theirsData(f, DebianDataDir, ours) {
		return Source{}, false, nil
	}
	// The unit's Environment= lines come first; the defaults file wins.
	env := map[string]string{"ETCD_NAME": hostname, "ETCD_DATA_DIR": DebianDataDir}
	src := Source{Style: "debian"}
	if err == nil {
		src.ConfigFile = DebianDefaults
		if err := readEnv(DebianDefaults, data, env, &src.Warnings); err != nil {
			return src, true, err
		}
	}
	return finish(f, src, env)
}

func findEL(f host.FS, data []byte, ours bool) (Source, bool, error) {
	theirs := data != nil && !ours
	if !theirs && !theirsData(f, ELDataDir, ours) {
		return Source{}, false, nil
	}
	// EL's etcd.conf names these; its unit passes them as flags.
	env := map[string]string{"ETCD_NAME": "default", "ETCD_DATA_DIR": ELDataDir}
	src := Source{Style: "el"}
	if theirs {
		src.ConfigFile = layout.EtcdConf
		if err := readEnv(layout.EtcdConf, data, env, &src.Warnings); err != nil {
			return src, true, err
		}
	}
	return finish(f, src, env)
}

// readEnv reads an env file as the distribution's unit does: KEY=value
// lines, quotes around values (EL writes them) removed by the server's
// parser later. Debian's DAEMON_ARGS flags become ETCD_* settings.
func readEnv(name string, data []byte, env map[string]string, warn *[]string) error {
	entries, err := envfile.Parse(name, bytes.NewReader(lenient(name, data, warn)))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Key == "DAEMON_ARGS" {
			if err := daemonArgs(name, e.Value, env); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(e.Key, "ETCD_") {
			env[e.Key] = e.Value
		}
	}
	return nil
}

// lenient drops the lines systemd's EnvironmentFile= skips with a warning
// (no '=', or not a variable name before it, such as "export X=1"), which
// the distribution's etcd therefore ran without.
func lenient(name string, data []byte, warn *[]string) []byte {
	var out []string
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		k, _, ok := strings.Cut(t, "=")
		if t == "" || t[0] == '#' || t[0] == ';' || ok && envfile.ValidKey(strings.TrimSpace(k)) {
			out = append(out, line)
			continue
		}
		*warn = append(*warn, fmt.Sprintf("%s:%d: %q skipped, as systemd skips it", name, i+1, t))
		out = append(out, "")
	}
	return []byte(strings.Join(out, "\n"))
}

// daemonArgs turns --flag=value and --flag value words into settings.
func daemonArgs(name, args string, env map[string]string) error {
	words := strings.Fields(args)
	for i := 0; i < len(words); i++ {
		w, ok := strings.CutPrefix(words[i], "--")
		if !ok {
			w, ok = strings.CutPrefix(words[i], "-")
		}
		if !ok {
			return fmt.Errorf("%s: DAEMON_ARGS word %q is not a flag; fix: write the setting as ETCD_* there, then run migrate again", name, words[i])
		}
		k, v, hasValue := strings.Cut(w, "=")
		if !hasValue {
			if i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
				v = words[i+1]
				i++
			} else {
				v = "true"
			}
		}
		env["ETCD_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = v
	}
	return nil
}

// workDir is where each distribution's unit runs etcd, which a relative
// data dir is relative to: Debian's unit sets none (/), EL's
// /var/lib/etcd.
var workDir = map[string]string{"debian": "/", "el": "/var/lib/etcd"}

// absolute makes a data or WAL dir setting an absolute, clean path.
func absolute(style, v string) string {
	v = strings.Trim(strings.TrimSpace(v), `"'`)
	if v == "" {
		return ""
	}
	if !path.IsAbs(v) {
		v = path.Join(workDir[style], v)
	}
	return path.Clean(v)
}

func finish(f host.FS, src Source, env map[string]string) (Source, bool, error) {
	src.DataDir = absolute(src.Style, env["ETCD_DATA_DIR"])
	env["ETCD_DATA_DIR"] = src.DataDir
	if w := absolute(src.Style, env["ETCD_WAL_DIR"]); w != "" {
		src.WALDir = w
		env["ETCD_WAL_DIR"] = w
	}
	src.Name = strings.Trim(env["ETCD_NAME"], `"'`)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		src.Env = append(src.Env, k+"="+env[k])
	}
	info, err := host.InspectDataDir(f, src.DataDir)
	if err != nil {
		return src, true, fmt.Errorf("reading %s: %w", src.DataDir, err)
	}
	src.Data = info
	if src.UnitFiles, err = unitFiles(f); err != nil {
		return src, true, err
	}
	// The member's own name, as its data records it, wins over a default.
	if len(info.Members) == 1 && info.Members[0].Name != "" {
		src.Name = info.Members[0].Name
	}
	return src, true, nil
}

func exists(f host.FS, p string) bool {
	_, err := f.Stat(p)
	return err == nil
}

// DpkgStatus is dpkg's database of installed packages.
const DpkgStatus = "/var/lib/dpkg/status"

// PurgeHazard says, when Debian's etcd-server is still known to dpkg
// (installed, or removed with its configuration files left, as replacing
// it leaves it), that purging it would delete this package's data: its
// purge script runs `rm -rf /var/lib/etcd` and `deluser --system etcd`.
// "" when there is no such package.
func PurgeHazard(f host.FS) string {
	b, err := f.ReadFile(DpkgStatus)
	if err != nil {
		return ""
	}
	for _, stanza := range strings.Split(string(b), "\n\n") {
		if !strings.HasPrefix(stanza, "Package: etcd-server\n") {
			continue
		}
		for _, line := range strings.Split(stanza, "\n") {
			status, ok := strings.CutPrefix(line, "Status: ")
			if !ok || strings.HasSuffix(status, " not-installed") {
				continue
			}
			return "dpkg still knows etcd-server (replaced, its configuration files kept): never purge it (apt purge, dpkg -P, cleaning up " +
				"packages in state rc): its purge script runs `rm -rf /var/lib/etcd` and `deluser --system etcd`, " +
				"which deletes this package's data and user. Leaving it costs two small files in /etc (docs/migration.md)"
		}
	}
	return ""
}
