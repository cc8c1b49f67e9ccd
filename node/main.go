package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	etcdversion "go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"go.uber.org/zap"

	"github.com/etcd-appliance/appliance/internal/version"
)

// Exit codes of the server, documented in docs/node.md and used by the
// unit's RestartPreventExitStatus=.
const (
	ExitOK      = 0
	ExitFailure = 1
	// ExitConfig: the configuration is invalid; restarting cannot help.
	ExitConfig = 78 // EX_CONFIG in sysexits.h
	// ExitRemoved: the cluster removed this member; restarting cannot help
	// until its data dir is moved aside.
	ExitRemoved = 79
	// ExitOldData: the data dir was written by an etcd too old to open
	// without changing it; restarting cannot help until it is migrated.
	ExitOldData = 80
	// ExitLostData: the cluster has this member, but its data dir is
	// empty (a new disk, the dir deleted); it cannot rejoin as itself
	// until it is replaced (etcd-installer member replace).
	ExitLostData = 81
)

// Main runs the etcd server with args as os.Args and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && (args[1] == "grpc-proxy" || args[1] == "gateway") {
		if len(args) > 2 && args[1] == "grpc-proxy" && args[2] == "start" && os.Getenv("NOTIFY_SOCKET") != "" {
			go proxyStatus(context.Background(), args[3:], SystemdNotifier{}, 100*time.Millisecond, 5*time.Second)
		}
		// Upstream's cobra root reads os.Args itself and exits on error.
		etcdmain.Main(args)
		return ExitOK
	}
	c, err := Parse(args[1:], os.Environ())
	if err != nil {
		return configFailure(stderr, err)
	}
	switch {
	case c.ShowHelp:
		fmt.Fprintf(stdout, "usage: etcd [flags]\n       etcd grpc-proxy start [options]\n       etcd gateway start [options]\n\n"+
			"Every flag can also be set as an ETCD_* environment variable (--listen-client-urls is ETCD_LISTEN_CLIENT_URLS).\n\n")
		PrintDefaults(stdout)
		return ExitOK
	case c.ShowVersion:
		fmt.Fprintf(stdout, "etcd Version: %s\nGit SHA: %s\nGo Version: %s\nGo OS/Arch: %s/%s\n%s\n",
			etcdversion.Version, etcdversion.GitSHA, runtime.Version(), runtime.GOOS, runtime.GOARCH, version.String())
		return ExitOK
	}
	if err := c.Validate(); err != nil {
		return configFailure(stderr, err)
	}
	lg := c.Etcd.GetLogger()
	if host, err := c.Etcd.UpdateDefaultClusterFromName(c.defaultInitialCluster); err != nil {
		lg.Info("failed to detect default host", zap.Error(err))
	} else if host != "" {
		lg.Info("detected default host for advertise", zap.String("host", host))
	}
	if c.Etcd.Dir == "" {
		c.Etcd.Dir = c.Etcd.Name + ".etcd"
		lg.Warn("'data-dir' was empty; using default", zap.String("data-dir", c.Etcd.Dir))
	}
	// Before anything else touches the data dir (Preflight writes a
	// probe file into it).
	if err := c.GuardDataDir(); err != nil {
		fmt.Fprintf(stderr, "etcd: %v\n", err)
		lg.Error("refusing to open the data dir", zap.Error(err))
		_ = SystemdNotifier{}.Notify("STATUS=refusing the data dir: " + oneLine(strings.TrimPrefix(err.Error(), ErrOldData.Error()+": ")))
		return ExitOldData
	}
	if err := c.Preflight(); err != nil {
		return configFailure(stderr, err)
	}
	if err := c.ResolveListen(context.Background(), SystemResolver{}); errors.Is(err, ErrConfig) {
		return configFailure(stderr, err)
	} else if err != nil {
		fmt.Fprintf(stderr, "etcd: %v\n", err)
		_ = SystemdNotifier{}.Notify("STATUS=" + oneLine(err.Error()))
		return ExitFailure
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	watchdog, _ := daemon.SdWatchdogEnabled(false)
	err = Run(ctx, c, RunOptions{UnderSystemd: os.Getenv("NOTIFY_SOCKET") != "", Watchdog: watchdog})
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrRemoved):
		fmt.Fprintf(stderr, "etcd: %v\n", err)
		return ExitRemoved
	case errors.Is(err, ErrLostData):
		fmt.Fprintf(stderr, "etcd: %v\n", err)
		return ExitLostData
	case errors.Is(err, ErrDiscoveryFull):
		// Restarting would only be refused again.
		fmt.Fprintf(stderr, "etcd: %v\n", err)
		return ExitConfig
	default:
		fmt.Fprintf(stderr, "etcd: %v\n", err)
		return ExitFailure
	}
}

func configFailure(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "etcd: %v\n", err)
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), ErrConfig.Error()+":"), ErrEnvironment.Error()+":")
	_ = SystemdNotifier{}.Notify("STATUS=configuration error: " + oneLine(msg))
	return ExitConfig
}
