package guardrails

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	Doc        string
	GoFiles    []string
	Deps       []string
	Standard   bool
}

func list(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-json"}, patterns...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range list(t, "github.com/etcd-appliance/appliance/...") {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// installerOnly are packages of etcd-installer that the server's own code
// path (package node, and etcdctl and etcdutl) must never import: the
// server runs none of the installer's code, although the multi-call binary
// links both (TestShippedBinaryModules). (logrus is not listed: etcd's
// own server imports it through tmc/grpc-websocket-proxy.)
var installerOnly = []string{
	"github.com/etcd-appliance/appliance/inventory",
	"github.com/etcd-appliance/appliance/render",
	"github.com/etcd-appliance/appliance/host",
	"github.com/etcd-appliance/appliance/cluster",
	"github.com/etcd-appliance/appliance/workflow",
	"github.com/etcd-appliance/appliance/packaging",
	"github.com/etcd-appliance/appliance/cli/installer",
	"github.com/BurntSushi/toml",
	"github.com/goreleaser/nfpm",
	"golang.org/x/crypto/ssh",
	"github.com/aymanbagabas/go-udiff",
}

func TestServerCodePathFreeOfInstallerDeps(t *testing.T) {
	for _, p := range list(t, "github.com/etcd-appliance/appliance/node", "github.com/etcd-appliance/appliance/cli/etcdctl",
		"github.com/etcd-appliance/appliance/cli/etcdutl", "github.com/etcd-appliance/appliance/layout", "github.com/etcd-appliance/appliance/datadir") {
		for _, d := range p.Deps {
			for _, bad := range installerOnly {
				if d == bad || strings.HasPrefix(d, bad+"/") {
					t.Errorf("%s depends on %s", p.ImportPath, d)
				}
			}
		}
	}
}
