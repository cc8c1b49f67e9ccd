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

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
	"github.com/etcd-appliance/appliance/render"
	"github.com/etcd-appliance/appliance/units"
	"github.com/etcd-appliance/appliance/workflow"
	"github.com/etcd-appliance/appliance/workflow/certs"
)

// Paths of a node package's files that differ from apply's: the etcd
// package owns /etc/etcd/etcd.conf, so a node package brings its own env
// file and a drop-in pointing the unit at it.
const (
	NodeConfPath   = layout.NodeConf
	NodeDropInPath = layout.EtcdDropInDir + "/50-etcd-node.conf"
	nodeMarkerDir  = "/usr/share/etcd-node"
)

// NodeOptions describe a build of per-host configuration packages.
type NodeOptions struct {
	Version, Revision string
	MTime             time.Time
	Out               string
	// Hosts limits the build to these hosts; empty means all.
	Hosts []string
	// Certs hands each host's package its certificates and keys (the
	// package is then as secret as the keys).
	Certs certs.Source
	// Plan records every package written and is the dry-run guard.
	Plan *workflow.Plan
}

// NodePackageName is the package carrying a host's configuration.
func NodePackageName(host string) string { return "etcd-node-" + host }

// NodePackages renders every host of a defaulted, validated inventory and
// wraps its files as etcd-node-HOST deb and rpm packages: installing one
// enables and starts the host's unit, removing it stops and disables it.
func NodePackages(inv *inventory.Inventory, o NodeOptions, etcdVersion string) ([]string, error) {
	r, err := render.Render(inv)
	if err != nil {
		return nil, err
	}
	if _, err := inv.Named("--host", o.Hosts); err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, h := range o.Hosts {
		want[h] = true
	}
	// Every host's certificates are checked before any package is built:
	// a stale one stops the build with nothing written.
	extra := map[string][]render.File{}
	for _, hf := range r.Hosts {
		if len(want) > 0 && !want[hf.Host.Name] {
			continue
		}
		if extra[hf.Host.Name], err = o.Certs.For(hf.Host.Name); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, hf := range r.Hosts {
		if len(want) > 0 && !want[hf.Host.Name] {
			continue
		}
		paths, err := nodePackage(inv, hf, extra[hf.Host.Name], o, etcdVersion)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hf.Host.Name, err)
		}
		out = append(out, paths...)
	}
	return out, nil
}

func nodePackage(inv *inventory.Inventory, hf render.HostFiles, extra []render.File, o NodeOptions, etcdVersion string) ([]string, error) {
	s, err := newStage()
	if err != nil {
		return nil, err
	}
	defer s.close()
	name := NodePackageName(hf.Host.Name)
	unit := units.GRPCProxy
	if hf.Host.Member != nil {
		unit = units.Etcd
	}
	marker := nodeMarkerDir + "/" + hf.Host.Name
	c, err := nodeContents(s, inv, hf, extra, o.MTime, marker)
	if err != nil {
		return nil, err
	}
	scripts, err := nodeScripts(s, unit, marker)
	if err != nil {
		return nil, err
	}
	info, err := inventoryPackage(s, name, o, "Configuration of host "+hf.Host.Name+" of etcd cluster "+inv.Cluster.Name+".",
		fmt.Sprintf("etcd configuration of host %s (cluster %s)\n"+
			"Rendered by etcd-installer from the inventory %s: installing it configures,\n"+
			"enables and starts %s on this host; removing it stops and disables it.",
			hf.Host.Name, inv.Cluster.Name, inv.Source, unit))
	if err != nil {
		return nil, err
	}
	info.Overridables = nfpm.Overridables{
		Depends:  []string{"etcd (>= " + etcdVersion + ")"},
		Contents: c,
		Scripts:  scripts,
		Deb:      nfpm.Deb{Compression: "xz"},
		RPM:      nfpm.RPM{Compression: "xz", BuildHost: "etcd-appliance", Group: "Applications/Databases", Packager: maintainer},
	}
	secret := slices.ContainsFunc(extra, func(f render.File) bool { return f.Secret })
	return buildAll(info, map[string]func(*nfpm.Info){
		"rpm": func(i *nfpm.Info) { i.Depends = []string{"etcd >= " + etcdVersion} },
	}, o.Out, secret, o.Plan)
}

// inventoryPackage is the nfpm.Info shared by the packages built from an
// inventory (architecture-independent, versioned by o), with its
// changelog entry; callers add their contents and relations.
func inventoryPackage(s *stage, name string, o NodeOptions, note, description string) (*nfpm.Info, error) {
	cl, err := s.changelog(o.Version+"-"+o.Revision, o.MTime, note)
	if err != nil {
		return nil, err
	}
	return &nfpm.Info{
		Name: name, Arch: "all", Platform: "linux", Version: o.Version, Release: o.Revision, VersionSchema: "none",
		Section: "database", Priority: "optional", Maintainer: maintainer, Homepage: homepage, License: "Apache-2.0",
		Vendor: "etcd appliance", Changelog: cl, MTime: o.MTime, Description: description,
	}, nil
}

// nodeContents are a host's rendered files and certificates (its env file
// moved to NodeConfPath, with a drop-in pointing the unit at it), and a
// marker that tells removal from upgrade.
func nodeContents(s *stage, inv *inventory.Inventory, hf render.HostFiles, extra []render.File, mt time.Time, marker string) (files.Contents, error) {
	c := &contents{s: s, mt: mt}
	add := func(dst string, data []byte, mode os.FileMode, owner, group, typ string) error {
		p, err := s.write(path.Join("root", dst), data)
		if err != nil {
			return err
		}
		c.file(p, dst, typ, mode, owner, group)
		return nil
	}
	dirs := map[string]bool{"/etc/etcd": true, nodeMarkerDir: true}
	if hf.Host.Member != nil {
		dirs["/etc/etcd/node"], dirs[layout.EtcdDropInDir] = true, true
	}
	for _, f := range extra {
		dirs[path.Dir(f.Path)] = true
	}
	if err := render.CheckPaths(slices.Concat(hf.Files, extra)); err != nil {
		return nil, err
	}
	for _, f := range slices.Concat(hf.Files, extra) {
		dst := f.Path
		if dst == layout.EtcdConf {
			dst = NodeConfPath
		}
		if err := add(dst, f.Data, f.Mode, f.Owner, f.Group, files.TypeConfig); err != nil {
			return nil, err
		}
	}
	if hf.Host.Member != nil {
		dropIn := fmt.Sprintf("# %s: etcd.service reads %s, from the package %s,\n"+
			"# instead of the etcd package's default configuration.\n[Service]\nEnvironmentFile=\nEnvironmentFile=%s\nEnvironmentFile=-%s\n",
			NodeDropInPath, NodeConfPath, NodePackageName(hf.Host.Name), NodeConfPath, layout.DefragmentEnv)
		if err := add(NodeDropInPath, []byte(dropIn), 0o644, "root", "root", files.TypeConfig); err != nil {
			return nil, err
		}
	}
	if err := add(marker, []byte(fmt.Sprintf("host %s of cluster %s, from inventory %s\n", hf.Host.Name, inv.Cluster.Name, inv.Source)),
		0o644, "root", "root", ""); err != nil {
		return nil, err
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		c.file("", d, files.TypeDir, 0o755, "root", "root")
	}
	return c.c, nil
}

// nodeScripts enable and start the host's unit after install and stop and
// disable it after removal. They take no arguments (dpkg and rpm differ):
// the marker, a plain file of this package, is gone only when the package
// is removed.
func nodeScripts(s *stage, unit, marker string) (nfpm.Scripts, error) {
	// A member restarts one at a time, only while the others keep quorum
	// (a package may be upgraded on every host at once); a proxy holds no
	// quorum.
	restart := "systemctl restart --no-block " + unit
	if unit == units.Etcd {
		restart = fmt.Sprintf(`etcd-installer safe-restart --reason "upgrade of the package %s"`, NodePackageName(path.Base(marker)))
	}
	post := fmt.Sprintf(`#!/bin/sh
# Enables and starts %[1]s with this host's configuration (no wait: a
# member of a new cluster waits for its peers); restarts it on upgrade.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable %[1]s
	case $(systemctl is-active %[1]s 2>/dev/null || true) in
	active | activating | reloading)
		%[2]s ||
			echo "%[1]s was not restarted safely (see above: it keeps running with its previous settings, or did not come back); once the cause is fixed, run: %[2]s" >&2
		;;
	*)
		systemctl start --no-block %[1]s
		;;
	esac
fi
`, unit, restart)
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
		return nfpm.Scripts{}, err
	}
	postrmPath, err := s.write("postremove.sh", []byte(postrm))
	if err != nil {
		return nfpm.Scripts{}, err
	}
	return nfpm.Scripts{PostInstall: postPath, PostRemove: postrmPath}, nil
}
