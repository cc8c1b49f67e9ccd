package render

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"

	"github.com/etcd-appliance/appliance/internal/envfile"
	"github.com/etcd-appliance/appliance/inventory"
	"github.com/etcd-appliance/appliance/layout"
)

// checkRendering holds every rendered file of a valid inventory to what it
// must be, whatever the inventory's values: an env file parses back (as
// systemd reads it) to exactly the variables meant, in order; a shell
// script or Procfile command is exactly the command meant, with every
// word a literal (no expansion, substitution, redirection or second
// command); a DNS file holds exactly the records meant, one a line.
func checkRendering(inv *inventory.Inventory, r *Rendering) error {
	for _, h := range r.Hosts {
		for _, f := range h.Files {
			var want []Var
			switch f.Path {
			case layout.EtcdConf:
				want, _ = MemberEnv(inv, h.Host.Member, MemberOptions{})
			case layout.ProxyConf:
				want, _ = ProxyEnv(inv, h.Host.Proxy)
			case layout.EtcdctlEnv:
				want = EtcdctlEnv(inv)
			default:
				continue
			}
			if err := sameEnv(f, want); err != nil {
				return fmt.Errorf("%s %w", h.Host.Name, err)
			}
		}
	}
	for _, f := range r.Cluster {
		var err error
		switch f.Name {
		case DiscoveryFile:
			err = checkDiscovery(inv, f.Data)
		case ProcfileFile:
			err = checkProcfile(inv, f.Data)
		case DnsmasqFile, BindZoneFile:
			err = checkDNS(inv, f)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return nil
}

func sameEnv(f File, want []Var) error {
	entries, err := envfile.Parse(f.Path, bytes.NewReader(f.Data))
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	if len(entries) != len(want) {
		return fmt.Errorf("%s: %d variables, want %d", f.Path, len(entries), len(want))
	}
	for i, e := range entries {
		if e.Key != want[i].Key || e.Value != want[i].Value {
			return fmt.Errorf("%s: variable %d is %s=%q, want %s=%q", f.Path, i, e.Key, e.Value, want[i].Key, want[i].Value)
		}
	}
	return nil
}

// literalCommands parses script and returns each command's words, failing
// on anything but simple commands of literal words (quoted or not).
func literalCommands(script string) ([][]string, error) {
	file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		return nil, err
	}
	var cmds [][]string
	for _, st := range file.Stmts {
		call, ok := st.Cmd.(*syntax.CallExpr)
		if !ok || len(st.Redirs) > 0 || st.Background || st.Negated || len(call.Assigns) > 0 {
			return nil, fmt.Errorf("not a simple command: %q", script)
		}
		var words []string
		for _, w := range call.Args {
			lit, ok := literal(w)
			if !ok {
				return nil, fmt.Errorf("a word that is not a literal in %q", script)
			}
			words = append(words, lit)
		}
		cmds = append(cmds, words)
	}
	return cmds, nil
}

func literal(w *syntax.Word) (string, bool) {
	var b strings.Builder
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			if p.Dollar {
				return "", false
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				l, ok := q.(*syntax.Lit)
				if !ok {
					return "", false
				}
				b.WriteString(l.Value)
			}
		default:
			return "", false
		}
	}
	// The parser keeps backslash escapes of unquoted words.
	s := b.String()
	if strings.Contains(s, "\\") {
		return "", false
	}
	return s, true
}

func sameWords(got, want []string) error {
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
		return fmt.Errorf("command %q, want %q", got, want)
	}
	return nil
}

func checkDiscovery(inv *inventory.Inventory, data []byte) error {
	cmds, err := literalCommands(string(data))
	if err != nil {
		return err
	}
	d := inv.Cluster.Discovery
	want := [][]string{{"set", "-eu"}, {"etcdctl", "--endpoints=" + strings.Join(d.Endpoints, ","), "put",
		"/_etcd/registry/" + d.Token + "/_config/size", strconv.Itoa(len(inv.Members))}}
	if len(cmds) != len(want) {
		return fmt.Errorf("%d commands, want %d", len(cmds), len(want))
	}
	for i := range want {
		if err := sameWords(cmds[i], want[i]); err != nil {
			return err
		}
	}
	return nil
}

func checkProcfile(inv *inventory.Inventory, data []byte) error {
	var procs []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if !strings.HasPrefix(line, "#") {
			procs = append(procs, line)
		}
	}
	if len(procs) != len(inv.Members)+len(inv.Proxies) {
		return fmt.Errorf("%d processes, want %d", len(procs), len(inv.Members)+len(inv.Proxies))
	}
	for i, line := range procs {
		name, command, ok := strings.Cut(line, ": ")
		if !ok {
			return fmt.Errorf("line %q is not NAME: COMMAND", line)
		}
		cmds, err := literalCommands(command)
		if err != nil || len(cmds) != 1 {
			return fmt.Errorf("%s: %v (%d commands)", name, err, len(cmds))
		}
		var want []string
		if i < len(inv.Members) {
			m := &inv.Members[i]
			vars, _ := MemberEnv(inv, m, MemberOptions{})
			if inv.Cluster.DataDir == layout.DataDir {
				vars = dropVar(vars, "ETCD_DATA_DIR")
			}
			want = []string{"etcd"}
			for _, v := range vars {
				want = append(want, "--"+strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(v.Key, "ETCD_"), "_", "-"))+"="+v.Value)
			}
		} else {
			p := &inv.Proxies[i-len(inv.Members)]
			want = append([]string{"etcd", "grpc-proxy", "start"}, proxyFlags(inv, p, p.Name+".proxy")...)
		}
		if err := sameWords(cmds[0], want); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

var (
	dnsmasqRE = regexp.MustCompile(`^(srv-host=([^,\s]+),([^,\s]+),(\d+),0,0|host-record=([^,\s]+),([^,\s]+))$`)
	bindRE    = regexp.MustCompile(`^(\S+)\. 300 IN (SRV 0 0 (\d+) (\S+)\.|A (\S+)|AAAA (\S+))$`)
)

func checkDNS(inv *inventory.Inventory, f ClusterFile) error {
	want := 2 * len(inv.Members)
	for _, m := range inv.Members {
		if m.IP != "" {
			want++
		}
	}
	re, comment := dnsmasqRE, "#"
	if f.Name == BindZoneFile {
		re, comment = bindRE, ";"
	}
	records := 0
	for _, line := range strings.Split(strings.TrimSuffix(string(f.Data), "\n"), "\n") {
		if strings.HasPrefix(line, comment+" ") {
			continue
		}
		m := re.FindStringSubmatch(line)
		if m == nil {
			return fmt.Errorf("line %q is not one record", line)
		}
		fields := m[2:]
		if f.Name == BindZoneFile {
			fields = append([]string{m[1]}, m[3:]...)
		}
		for _, field := range fields {
			if field != "" && !dnsField(field) {
				return fmt.Errorf("line %q: %q is not a name, an address or a port", line, field)
			}
		}
		records++
	}
	if records != want {
		return fmt.Errorf("%d records, want %d", records, want)
	}
	return nil
}

func dnsField(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	if _, err := strconv.Atoi(s); err == nil {
		return true
	}
	return regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9])?$`).MatchString(s)
}

// shellcheck lints the rendered scripts and Procfile commands with
// ShellCheck, the linter made for shell (a Debian package: .ci/run
// installs it).
func shellcheck(r *Rendering, dir string) error {
	var scripts []string
	for _, f := range r.Cluster {
		switch f.Name {
		case DiscoveryFile:
			scripts = append(scripts, string(f.Data))
		case ProcfileFile:
			var b strings.Builder
			b.WriteString("#!/bin/sh\n")
			for _, line := range strings.Split(string(f.Data), "\n") {
				if _, command, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, "#") {
					b.WriteString(command + "\n")
				}
			}
			scripts = append(scripts, b.String())
		}
	}
	for i, s := range scripts {
		p := filepath.Join(dir, fmt.Sprintf("script-%d.sh", i))
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			return err
		}
		if out, err := exec.Command("shellcheck", "-s", "sh", p).CombinedOutput(); err != nil {
			return fmt.Errorf("shellcheck: %v\n%s\n%s", err, out, s)
		}
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			return fmt.Errorf("sh -n: %v\n%s", err, out)
		}
	}
	return nil
}
