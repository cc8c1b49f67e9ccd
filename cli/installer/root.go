// Package installer is the etcd-installer command line: cobra commands
// that load an inventory, map their flags to the options of a workflow
// (packages under workflow/), run it and print what it did. No workflow
// lives here.
package installer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/internal/version"
	"github.com/etcd-appliance/appliance/inventory"
)

// env is what every command shares: output streams and the logger.
type env struct {
	stdout, stderr io.Writer
	log            *logrus.Logger
	logLevel       string
	// tty: stderr is a terminal (progress rewrites one line there).
	tty bool
}

// lockedWriter lets the logger and progress reports share stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// NewRootCmd builds etcd-installer with every subcommand.
func NewRootCmd(stdout, stderr io.Writer) *cobra.Command {
	e := &env{stdout: stdout, stderr: &lockedWriter{w: stderr}, log: logrus.New()}
	if f, ok := stderr.(*os.File); ok {
		e.tty = isatty.IsTerminal(f.Fd())
	}
	e.log.SetOutput(e.stderr)
	e.log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	root := &cobra.Command{
		Use:   "etcd-installer",
		Short: "Provision and operate etcd clusters from one TOML inventory",
		Long: "etcd-installer reads an inventory (one TOML file describing a cluster), validates it,\n" +
			"renders each host's files and applies them. Start with `etcd-installer example`.",
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			lvl, err := logrus.ParseLevel(e.logLevel)
			if err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			e.log.SetLevel(lvl)
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(
		newValidateCmd(e),
		newRenderCmd(e),
		newPlanCmd(e),
		newExampleCmd(e),
		newApplyCmd(e),
		newRunCmd(e),
		newStatusCmd(e),
		newHealthCmd(e),
		newMemberCmd(e),
		newBackupCmd(e),
		newMaintenanceCmd(e),
		newRestoreCmd(e),
		newDoctorCmd(e),
		newInspectCmd(e),
		newPackageCmd(e),
		newCertsCmd(e),
		newMigrateCmd(e),
		newSafeRestartCmd(e),
	)
	return root
}

// Main runs etcd-installer with args (without the program name) and
// returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := NewRootCmd(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		if !errors.Is(err, errUnhealthy) && !errors.Is(err, errFindings) {
			fmt.Fprintln(stderr, "etcd-installer:", err)
		}
		return 1
	}
	return 0
}

// load reads, defaults and validates an inventory file.
func load(path string) (*inventory.Inventory, error) {
	data, err := inventory.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d, err := inventory.Parse(filepath.Base(path), data)
	if err != nil {
		return nil, err
	}
	d.Dir = filepath.Dir(path)
	return d, nil
}
