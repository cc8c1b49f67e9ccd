package packaging

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/files"

	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/render"
)

// MonitoringPackageName is the package carrying a cluster's alert rules
// and dashboard, for the host that runs Prometheus and Grafana.
func MonitoringPackageName(cluster string) string { return "etcd-monitoring-" + cluster }

// Where the monitoring package puts its files: the rules where Prometheus
// setups load them from (rule_files: [/etc/prometheus/rules/*.yml]), the
// dashboard with a Grafana provisioning provider that loads it, and the
// scrape job to merge, for reference.
const (
	monitoringRulesDir   = "/etc/prometheus/rules"
	monitoringGrafanaDir = "/etc/grafana/provisioning/dashboards"
	monitoringShareDir   = "/usr/share/etcd-monitoring"
)

// MonitoringFiles are the files of a cluster's monitoring package, by
// destination.
func MonitoringFiles(inv *inventory.Inventory) (map[string][]byte, error) {
	r, err := render.Render(inv)
	if err != nil {
		return nil, err
	}
	name := inv.Cluster.Name
	rules := path.Join(monitoringRulesDir, "etcd-"+name+".yml")
	share := path.Join(monitoringShareDir, name)
	out := map[string][]byte{}
	for _, f := range r.Cluster {
		switch f.Name {
		case render.AlertsFileName(name):
			out[rules] = f.Data
		case render.DashboardFile:
			out[path.Join(share, "dashboards", render.DashboardFile)] = f.Data
		}
	}
	conf, err := render.PrometheusConfig(inv, rules)
	if err != nil {
		return nil, err
	}
	out[path.Join(share, render.PrometheusFile)] = conf
	out[path.Join(monitoringGrafanaDir, "etcd-"+name+".yaml")] = []byte(fmt.Sprintf(`# Grafana loads the dashboard of etcd cluster %s from %s
# (package %s).
apiVersion: 1
providers:
  - name: etcd-%s
    folder: etcd
    type: file
    disableDeletion: true
    options:
      path: %s
`, name, path.Join(share, "dashboards"), MonitoringPackageName(name), name, path.Join(share, "dashboards")))
	return out, nil
}

// MonitoringPackage builds the cluster's etcd-monitoring-CLUSTER deb and
// rpm: installed on the Prometheus and Grafana host, the rules are in
// /etc/prometheus/rules and the dashboard is provisioned into Grafana.
// It depends on neither (a host may run one of them, or build its own
// configuration from the files in /usr/share/etcd-monitoring).
func MonitoringPackage(inv *inventory.Inventory, o NodeOptions) ([]string, error) {
	fs, err := MonitoringFiles(inv)
	if err != nil {
		return nil, err
	}
	s, err := newStage()
	if err != nil {
		return nil, err
	}
	defer s.close()
	c := &contents{s: s, mt: o.MTime}
	share := path.Join(monitoringShareDir, inv.Cluster.Name)
	for _, dst := range slices.Sorted(maps.Keys(fs)) {
		p, err := s.write(path.Join("root", dst), fs[dst])
		if err != nil {
			return nil, err
		}
		typ := ""
		if !strings.HasPrefix(dst, monitoringShareDir+"/") {
			typ = files.TypeConfig
		}
		c.file(p, dst, typ, 0o644, "root", "root")
	}
	cr, err := embedded.ReadFile("files/copyright")
	if err != nil {
		return nil, err
	}
	name := MonitoringPackageName(inv.Cluster.Name)
	if err := c.doc("copyright", cr, "/usr/share/doc/"+name+"/copyright", "/usr/share/licenses/"+name+"/copyright", files.TypeRPMLicense); err != nil {
		return nil, err
	}
	// Its own directories; Grafana's provisioning directory is Grafana's.
	for _, d := range []string{monitoringRulesDir, monitoringShareDir, share, path.Join(share, "dashboards")} {
		c.file("", d, files.TypeDir, 0o755, "root", "root")
	}
	info, err := inventoryPackage(s, name, o, "Alert rules and dashboard of etcd cluster "+inv.Cluster.Name+".",
		fmt.Sprintf("Prometheus alert rules and Grafana dashboard of etcd cluster %s\n"+
			"Rendered by etcd-installer from the inventory %s, for the host that runs\n"+
			"Prometheus and Grafana: the rules in %s (load them with\n"+
			"rule_files: [%s/*.yml]), the dashboard provisioned into Grafana, and\n"+
			"the scrape job to merge in %s.",
			inv.Cluster.Name, inv.Source, monitoringRulesDir, monitoringRulesDir, path.Join(monitoringShareDir, inv.Cluster.Name, render.PrometheusFile)))
	if err != nil {
		return nil, err
	}
	info.Overridables = nfpm.Overridables{
		Contents: c.c,
		Deb:      nfpm.Deb{Compression: "xz"},
		RPM:      nfpm.RPM{Compression: "xz", BuildHost: "etcd-appliance", Group: "Applications/System", Packager: maintainer},
	}
	return buildAll(info, nil, o.Out, false, o.Plan)
}
