package saferestart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/etcd-appliance/appliance/host"
	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/layout"
)

// Settings are what this host says about its member and its cluster.
type Settings struct {
	// Name is the member's ETCD_NAME ("default", etcd's default, when
	// unset).
	Name string
	// Endpoints, CA, Cert and Key reach the cluster: the host's etcdctl
	// settings, or else the member's own advertised client URLs with its
	// TLS files.
	Endpoints     []string
	CA, Cert, Key string
	// From names the files they were read from, for messages.
	From []string
}

// EnvironmentFiles asks systemd which environment files unit reads (a
// node package's drop-in replaces the default one), in order.
func EnvironmentFiles(ctx context.Context, r host.Runner, unit string) ([]string, error) {
	// Without --value, which systemd before 230 lacks.
	out, err := r.Run(ctx, nil, "systemctl", "show", "--property=EnvironmentFiles", unit)
	if err != nil {
		return nil, err
	}
	return parseEnvironmentFiles(string(out)), nil
}

// parseEnvironmentFiles reads systemctl show's lines, one per file:
// "EnvironmentFiles=/etc/etcd/etcd.conf (ignore_errors=no)".
func parseEnvironmentFiles(out string) []string {
	var files []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "EnvironmentFiles=")
		if p, _, _ := strings.Cut(line, " ("); p != "" {
			files = append(files, strings.TrimPrefix(p, "-"))
		}
	}
	return files
}

// ReadSettings reads the member's environment files (later ones win, as
// in systemd) and the host's etcdctl settings.
func ReadSettings(f host.FS, envFiles []string) (Settings, error) {
	vars := map[string]string{}
	var s Settings
	for _, p := range envFiles {
		data, err := f.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return s, err
		}
		entries, err := envfile.Parse(p, bytes.NewReader(data))
		if err != nil {
			return s, err
		}
		for k, v := range envfile.Map(entries) {
			vars[k] = v
		}
		s.From = append(s.From, p)
	}
	s.Name = vars["ETCD_NAME"]
	if s.Name == "" {
		s.Name = "default"
	}
	data, err := f.ReadFile(layout.EtcdctlEnv)
	switch {
	case err == nil:
		entries, err := envfile.Parse(layout.EtcdctlEnv, bytes.NewReader(data))
		if err != nil {
			return s, err
		}
		ctl := envfile.Map(entries)
		s.Endpoints = split(ctl["ETCDCTL_ENDPOINTS"])
		s.CA, s.Cert, s.Key = ctl["ETCDCTL_CACERT"], ctl["ETCDCTL_CERT"], ctl["ETCDCTL_KEY"]
		s.From = append(s.From, layout.EtcdctlEnv)
	case errors.Is(err, fs.ErrNotExist):
		// A member configured by hand: its own client URLs serve the
		// member list, which names the others.
		s.Endpoints = split(vars["ETCD_ADVERTISE_CLIENT_URLS"])
		if len(s.Endpoints) == 0 {
			s.Endpoints = []string{"http://localhost:2379"}
		}
		s.CA, s.Cert, s.Key = vars["ETCD_TRUSTED_CA_FILE"], vars["ETCD_CERT_FILE"], vars["ETCD_KEY_FILE"]
	default:
		return s, err
	}
	if len(s.Endpoints) == 0 {
		return s, fmt.Errorf("%s sets no ETCDCTL_ENDPOINTS; fix: run etcd-installer apply for this host, or pass --endpoints", layout.EtcdctlEnv)
	}
	return s, nil
}

func split(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}
