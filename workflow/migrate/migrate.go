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
	// DataDir and Name are where it kept its data and its member name.
	DataDir, Name string
	// Data is what the data dir holds.
	Data datadir.Info
}

// Find looks for a distribution's etcd on the host f reaches: a Debian
// /etc/default/etcd or data in /var/lib/etcd/default, or an
// /etc/etcd/etcd.conf that this appliance did not write (EL's, with its
// quoted values) or data in /var/lib/etcd/default.etcd. hostname is what
// Debian's unit names the member (ETCD_NAME=%H).
func Find(f host.FS, hostname string) (Source, error) {
	if src, ok, err := findDebian(f, hostname); ok || err != nil {
		return src, err
	}
	if src, ok, err := findEL(f); ok || err != nil {
		return src, err
	}
	return Source{}, fmt.Errorf("%w: looked for %s, an %s not written by this package, %s and %s",
		ErrNothing, DebianDefaults, layout.EtcdConf, DebianDataDir, ELDataDir)
}

func findDebian(f host.FS, hostname string) (Source, bool, error) {
	data, err := f.ReadFile(DebianDefaults)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Source{}, false, err
	}
	hasData := exists(f, path.Join(DebianDataDir, "member"))
	if err != nil && !hasData {
		return Source{}, false, nil
	}
	// The unit's Environment= lines come first; the defaults file wins.
	env := map[string]string{"ETCD_NAME": hostname, "ETCD_DATA_DIR": DebianDataDir}
	src := Source{Style: "debian"}
	if err == nil {
		src.ConfigFile = DebianDefaults
		if err := readEnv(DebianDefaults, data, env); err != nil {
			return src, true, err
		}
	}
	return finish(f, src, env)
}

func findEL(f host.FS) (Source, bool, error) {
	data, err := f.ReadFile(layout.EtcdConf)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Source{}, false, err
	}
	theirs := err == nil && !bytes.HasPrefix(data, []byte(ownMarker))
	hasData := exists(f, path.Join(ELDataDir, "member"))
	if !theirs && !hasData {
		return Source{}, false, nil
	}
	// EL's etcd.conf names these; its unit passes them as flags.
	env := map[string]string{"ETCD_NAME": "default", "ETCD_DATA_DIR": ELDataDir}
	src := Source{Style: "el"}
	if theirs {
		src.ConfigFile = layout.EtcdConf
		if err := readEnv(layout.EtcdConf, data, env); err != nil {
			return src, true, err
		}
	}
	return finish(f, src, env)
}

// readEnv reads an env file as the distribution's unit does: KEY=value
// lines, quotes around values (EL writes them) removed by the server's
// parser later. Debian's DAEMON_ARGS flags become ETCD_* settings.
func readEnv(name string, data []byte, env map[string]string) error {
	entries, err := envfile.Parse(name, bytes.NewReader(data))
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

func finish(f host.FS, src Source, env map[string]string) (Source, bool, error) {
	src.DataDir = strings.Trim(env["ETCD_DATA_DIR"], `"'`)
	src.Name = strings.Trim(env["ETCD_NAME"], `"'`)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		src.Env = append(src.Env, k+"="+env[k])
	}
	info, err := host.InspectDataDir(f, src.DataDir)
	if err != nil {
		return src, true, fmt.Errorf("reading %s: %w", src.DataDir, err)
	}
	src.Data = info
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
