// Package writer is the system test's client, run inside a test host: it
// puts sequential keys through every fault and records every acknowledged
// one, so that the suite can prove that none was lost.
package writer

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/srv"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Stats is what the writer reports while it runs.
type Stats struct {
	Acked int64 `json:"acked"`
	// Failed writes could not complete within the 10 s deadline.
	Failed int64 `json:"failed"`
	// Retried counts transient errors a write recovered from in time.
	Retried int64  `json:"retried"`
	LastErr string `json:"lastErr,omitempty"`
}

// Main is a client for the system test, run inside a test host: it
// puts sequential keys until a stop file appears (or its bounds end it), appends every key the
// cluster acknowledged to a log, and keeps counters in a stats file;
// `verify` reads every logged key back. It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("e2e-writer", flag.ContinueOnError)
	eps := fs.String("endpoints", "", "comma-separated client URLs")
	srvDomain := fs.String("discovery-srv", "", "find the endpoints in this domain's _etcd-client(-ssl)._tcp SRV records instead, as etcdctl --discovery-srv does")
	logPath := fs.String("log", "/root/acked.log", "acknowledged keys")
	stats := fs.String("stats", "/root/writer.json", "counters, rewritten as it goes")
	stop := fs.String("stop", "/root/writer.stop", "the writer stops when this file exists")
	prefix := fs.String("prefix", "e2e/", "the keys it writes (writers beside each other need their own)")
	// Bounds, should the stop file never come (a test cut short).
	maxWrites := fs.Int("max-writes", 200000, "stop after this many writes")
	maxTime := fs.Duration("max-time", 30*time.Minute, "stop after this long")
	var tlsInfo transport.TLSInfo
	fs.StringVar(&tlsInfo.TrustedCAFile, "cacert", "", "cluster CA (with TLS)")
	fs.StringVar(&tlsInfo.CertFile, "cert", "", "client certificate (with TLS)")
	fs.StringVar(&tlsInfo.KeyFile, "key", "", "client key (with TLS)")
	verify := len(args) > 0 && args[0] == "verify"
	if verify {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// Keepalives, as long-lived etcd clients use: without them a connection
	// to a host whose link was cut stays "up" and requests wait for their
	// timeout instead of going to a live member.
	endpoints := strings.Split(*eps, ",")
	if *srvDomain != "" {
		found, err := srv.GetClient("etcd-client", *srvDomain, "")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		endpoints = found.Endpoints
		fmt.Fprintf(stderr, "e2e-writer: endpoints from %s SRV records: %s\n", *srvDomain, strings.Join(endpoints, ","))
	}
	cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second, Logger: zap.NewNop()}
	if !tlsInfo.Empty() {
		tc, err := tlsInfo.ClientConfig()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		cfg.TLS = tc
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer cli.Close()
	if verify {
		return verifyAcked(cli, *prefix, *logPath, stdout, stderr)
	}
	f, err := os.OpenFile(*logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer f.Close()
	var acked, failed, retried atomic.Int64
	var lastErr atomic.Value
	lastErr.Store("")
	writeStats := func() {
		b, _ := json.Marshal(Stats{Acked: acked.Load(), Failed: failed.Load(), Retried: retried.Load(), LastErr: lastErr.Load().(string)})
		os.WriteFile(*stats+".tmp", b, 0o644)
		os.Rename(*stats+".tmp", *stats)
	}
	last := time.Now()
	end := last.Add(*maxTime)
	for i := 0; i < *maxWrites && time.Now().Before(end); i++ {
		if _, err := os.Stat(*stop); err == nil {
			break
		}
		key := fmt.Sprintf("%s%08d", *prefix, i)
		// An application's write deadline. clientv3 never retries a write
		// on its own once sent; an application retries an idempotent put
		// (this one is) until its deadline: a write that does not complete
		// within it has failed.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		for {
			actx, acancel := context.WithTimeout(ctx, 3*time.Second)
			_, err = cli.Put(actx, key, "v")
			acancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			retried.Add(1)
			lastErr.Store(err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		cancel()
		if err != nil {
			failed.Add(1)
			lastErr.Store(err.Error())
		} else {
			// Logged only once acknowledged, and synced: a lost write is one
			// in this log that the cluster no longer has.
			fmt.Fprintln(f, key)
			f.Sync()
			acked.Add(1)
		}
		if time.Since(last) > 200*time.Millisecond {
			writeStats()
			last = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
	writeStats()
	return 0
}

func verifyAcked(cli *clientv3.Client, prefix, logPath string, stdout, stderr io.Writer) int {
	f, err := os.Open(logPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	n, lost := 0, 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		n++
		if !have[s.Text()] {
			lost++
			if lost <= 10 {
				fmt.Fprintln(stderr, "lost:", s.Text())
			}
		}
	}
	fmt.Fprintf(stdout, "%d acknowledged writes, %d lost, %d keys in the cluster\n", n, lost, len(have))
	if lost > 0 || n == 0 {
		return 1
	}
	return 0
}
