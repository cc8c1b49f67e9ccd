package packaging

import (
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/etcd-appliance/appliance/installer"
	"github.com/etcd-appliance/appliance/units"
)

// Paths of a node package's files that differ from apply's: the etcd
// package owns /etc/etcd/etcd.conf, so a node package brings its own env
// file and a drop-in pointing the unit at it.
const (
	NodeConfPath   = "/etc/etcd/node/etcd.conf"
	NodeDropInPath = installer.EtcdDropInDir + "/50-etcd-node.conf"
	nodeMarkerDir  = "/usr/share/etcd-node"
)

// NodeOptions describe a build of per-host configuration packages.
type NodeOptions struct {
	Version, Revision string
	MTime             time.Time
	Out               string
	// Hosts limits the build to these hosts; empty means all.
	Hosts []string
	// Extra are files added to a host's package, by host name: its
	// certificates and keys (the package is then as secret as the keys).
	Extra map[string][]installer.File
}

// NodePackageName is the package carrying a host's configuration.
func NodePackageName(host string) string { return "etcd-node-" + host }

// NodePackages renders every host of a defaulted, validated inventory and
// wraps its files as etcd-node-HOST deb and rpm packages: installing one
// enables and starts the host's unit, removing it stops and disables it.
func NodePackages(inv *installer.Inventory, o NodeOptions, etcdVersion string) ([]string, error) {
	r, err := installer.Render(inv)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, h := range o.Hosts {
		if _, ok := inv.Host(h); !ok {
			return nil, fmt.Errorf("%w: no host %s in %s", installer.ErrInvalid, h, inv.Source)
		}
		want[h] = true
	}
	var out []string
	for _, hf := range r.Hosts {
		if len(want) > 0 && !want[hf.Host.Name] {
			continue
		}
		paths, err := nodePackage(inv, hf, o, etcdVersion)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hf.Host.Name, err)
		}
		out = append(out, paths...)
	}
	return out, nil
}

func nodePackage(inv *installer.Inventory, hf installer.HostFiles, o NodeOptions, etcdVersion string) ([]string, error) {
	s, err := newStage()
	if err != nil {
		return nil, err
	}
	defer s.close()
	mt := o.MTime
	name := NodePackageName(hf.Host.Name)
	unit := units.GRPCProxy
	if hf.Host.Member != nil {
		unit = units.Etcd
	}
	var c files.Contents
	addData := func(dst string, data []byte, mode os.FileMode, owner, group, typ string) error {
		p, err := s.write(path.Join("root", dst), data)
		if err != nil {
			return err
		}
		c = append(c, &files.Content{Source: p, Destination: dst, Type: typ, FileInfo: fileInfo(mode, owner, group, mt)})
		return nil
	}
	dirs := map[string]bool{"/etc/etcd": true, nodeMarkerDir: true}
	if hf.Host.Member != nil {
		dirs["/etc/etcd/node"], dirs[installer.EtcdDropInDir] = true, true
	}
	for _, f := range o.Extra[hf.Host.Name] {
		dirs[path.Dir(f.Path)] = true
	}
	for _, f := range slices.Concat(hf.Files, o.Extra[hf.Host.Name]) {
		dst := f.Path
		if dst == installer.EtcdConfPath {
			dst = NodeConfPath
		}
		if err := addData(dst, f.Data, f.Mode, f.Owner, f.Group, files.TypeConfig); err != nil {
			return nil, err
		}
	}
	if hf.Host.Member != nil {
		dropIn := fmt.Sprintf("# %s: etcd.service reads %s, from the package %s,\n"+
			"# instead of the etcd package's default configuration.\n[Service]\nEnvironmentFile=\nEnvironmentFile=%s\n",
			NodeDropInPath, NodeConfPath, name, NodeConfPath)
		if err := addData(NodeDropInPath, []byte(dropIn), 0o644, "root", "root", files.TypeConfig); err != nil {
			return nil, err
		}
	}
	marker := nodeMarkerDir + "/" + hf.Host.Name
	if err := addData(marker, []byte(fmt.Sprintf("host %s of cluster %s, from inventory %s\n", hf.Host.Name, inv.Cluster.Name, inv.Source)),
		0o644, "root", "root", ""); err != nil {
		return nil, err
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		c = append(c, &files.Content{Destination: d, Type: files.TypeDir, FileInfo: fileInfo(0o755, "root", "root", mt)})
	}

	// Without arguments (dpkg and rpm differ): the marker, a plain file of
	// this package, is gone only when the package is removed.
	post := fmt.Sprintf(`#!/bin/sh
# Enables and starts %[1]s with this host's configuration (no wait: a
# member of a new cluster waits for its peers); restarts it on upgrade.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable %[1]s
	if systemctl is-active --quiet %[1]s; then
		systemctl restart --no-block %[1]s
	else
		systemctl start --no-block %[1]s
	fi
fi
`, unit)
	postrm := fmt.Sprintf(`#!/bin/sh
# After removal (not upgrade: then %[2]s exists), stops and disables %[1]s.
set -e
if [ ! -e %[2]s ] && [ -d /run/systemd/system ]; then
	systemctl stop %[1]s >/dev/null 2>&1 || true
	systemctl disable %[1]s >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
`, unit, marker)
	postPath, err := s.write("postinstall.sh", []byte(post))
	if err != nil {
		return nil, err
	}
	postrmPath, err := s.write("postremove.sh", []byte(postrm))
	if err != nil {
		return nil, err
	}
	version := o.Version + "-" + o.Revision
	cl, err := s.changelog(version, mt, "Configuration of host "+hf.Host.Name+" of etcd cluster "+inv.Cluster.Name+".")
	if err != nil {
		return nil, err
	}
	info := &nfpm.Info{
		Name: name, Arch: "all", Platform: "linux", Version: o.Version, Release: o.Revision, VersionSchema: "none",
		Section: "database", Priority: "optional", Maintainer: maintainer, Homepage: homepage, License: "Apache-2.0",
		Vendor: "etcd appliance", Changelog: cl, MTime: mt,
		Description: fmt.Sprintf("etcd configuration of host %s (cluster %s)\n"+
			"Rendered by etcd-installer from the inventory %s: installing it configures,\n"+
			"enables and starts %s on this host; removing it stops and disables it.",
			hf.Host.Name, inv.Cluster.Name, inv.Source, unit),
		Overridables: nfpm.Overridables{
			Depends:  []string{"etcd (>= " + etcdVersion + ")"},
			Contents: c,
			Scripts:  nfpm.Scripts{PostInstall: postPath, PostRemove: postrmPath},
			Deb:      nfpm.Deb{Compression: "xz"},
			RPM:      nfpm.RPM{Compression: "xz", BuildHost: "etcd-appliance", Group: "Applications/Databases", Packager: maintainer},
		},
	}
	var out []string
	for _, format := range Formats {
		i := *info
		i.Overridables.Contents = append(files.Contents(nil), info.Contents...)
		if format == "rpm" {
			i.Depends = []string{"etcd >= " + etcdVersion}
		}
		p, err := build(format, &i, o.Out)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
