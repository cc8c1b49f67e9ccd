package installer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/internal/atomicfile"
	"github.com/etcd-appliance/appliance/render"
)

// ClusterDir is where render puts cluster-wide files, next to one
// directory per host (host names cannot start with '_').
const ClusterDir = "_cluster"

func newRenderCmd(e *env) *cobra.Command {
	var out string
	var hosts []string
	cmd := &cobra.Command{
		Use:   "render INVENTORY --out DIR",
		Short: "Write each host's files under DIR/HOST/ and the cluster's under DIR/_cluster/",
		Long: "render writes, for every host, a tree mirroring its file system (DIR/etcd0/etc/etcd/etcd.conf ...)\n" +
			"and the cluster-wide files (DNS records, Prometheus scrape config, Procfile) under DIR/_cluster.\n" +
			"Only files whose content changed are rewritten.",
		Example: `  etcd-installer render prod.toml --out rendered/
  etcd-installer render prod.toml --out rendered/ --host etcd0`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := givenNames(cmd, "host", hosts); err != nil {
				return err
			}
			i, err := load(args[0])
			if err != nil {
				return err
			}
			r, err := render.Render(i)
			if err != nil {
				return err
			}
			if _, err := i.Named("--host", hosts); err != nil {
				return err
			}
			want := map[string]bool{}
			for _, h := range hosts {
				want[h] = true
			}
			for _, hf := range r.Hosts {
				if len(want) > 0 && !want[hf.Host.Name] {
					continue
				}
				for _, f := range hf.Files {
					if err := writeOut(e, out, filepath.Join(out, hf.Host.Name, f.Path), f.Data, f.Mode); err != nil {
						return err
					}
				}
			}
			if len(want) == 0 {
				for _, f := range r.Cluster {
					if err := writeOut(e, out, filepath.Join(out, ClusterDir, f.Name), f.Data, f.Mode); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory (required)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "render only these hosts")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func writeOut(e *env, out, path string, data []byte, mode os.FileMode) error {
	if err := mkdirNoLinks(out, filepath.Dir(path)); err != nil {
		return err
	}
	res, err := atomicfile.Write(path, data, atomicfile.Options{Mode: mode, UID: -1, GID: -1, Within: out})
	if err != nil {
		return err
	}
	state := "unchanged"
	if res.Changed {
		state = "written"
	}
	e.log.WithField("file", path).Info(state)
	return nil
}

// mkdirNoLinks creates dir and its parents below out, refusing a symbolic
// link on the way: MkdirAll would follow one into another tree.
func mkdirNoLinks(out, dir string) error {
	rel, err := filepath.Rel(out, dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	p := out
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s; fix: remove the link, render writes only into real directories", atomicfile.ErrSymlink, p)
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}
