package packaging

import (
	"flag"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Main builds the etcd packages for the given architectures, as
// `make package` runs it, and writes SHA256SUMS. It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("etcd-package", flag.ContinueOnError)
	fs.SetOutput(stderr)
	version := fs.String("version", "", "etcd version, e.g. 3.7.3 (required)")
	revision := fs.String("revision", "1", "package revision")
	hostBin := fs.String("host-bin", "bin", "directory with this machine's etcdctl and etcd-installer, for completions")
	out := fs.String("out", "dist", "output directory")
	mtime := fs.Int64("mtime", 0, "modification time of every file, in Unix seconds (reproducible builds)")
	var binaries []string
	fs.Func("binary", "ARCH=PATH of the etcd multi-call binary; repeat per architecture", func(s string) error {
		binaries = append(binaries, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version == "" || len(binaries) == 0 {
		fmt.Fprintln(stderr, "etcd-package: --version and at least one --binary ARCH=PATH are required")
		return 2
	}
	comps, err := completions(*hostBin)
	if err != nil {
		fmt.Fprintln(stderr, "etcd-package:", err)
		return 1
	}
	for _, b := range binaries {
		arch, bin, ok := strings.Cut(b, "=")
		if !ok {
			fmt.Fprintf(stderr, "etcd-package: --binary %s: want ARCH=PATH\n", b)
			return 2
		}
		start := time.Now()
		paths, err := EtcdPackages(EtcdOptions{Version: *version, Revision: *revision, Arch: arch, Binary: bin,
			Completions: comps, MTime: time.Unix(*mtime, 0).UTC(), Out: *out})
		if err != nil {
			fmt.Fprintln(stderr, "etcd-package:", err)
			return 1
		}
		for _, p := range paths {
			fmt.Fprintf(stdout, "%s (%s, %s)\n", p, humanSize(p), time.Since(start).Round(time.Millisecond))
		}
	}
	if err := WriteSHA256SUMS(*out); err != nil {
		fmt.Fprintln(stderr, "etcd-package:", err)
		return 1
	}
	return 0
}

// completions runs this machine's binaries to produce their completion
// scripts; they are the same for every architecture.
func completions(bin string) (map[string]Completion, error) {
	m := map[string]Completion{}
	for _, cmd := range []string{"etcdctl", "etcd-installer"} {
		var c Completion
		for _, shell := range []string{"bash", "zsh"} {
			b, err := exec.Command(filepath.Join(bin, cmd), "completion", shell).Output()
			if err != nil {
				return nil, fmt.Errorf("%s completion %s: %w", cmd, shell, err)
			}
			if shell == "bash" {
				c.Bash = b
			} else {
				c.Zsh = b
			}
		}
		m[cmd] = c
	}
	return m, nil
}

func humanSize(p string) string {
	fi, err := statFile(p)
	if err != nil {
		return "?"
	}
	return strconv.FormatFloat(float64(fi)/1e6, 'f', 1, 64) + " MB"
}
