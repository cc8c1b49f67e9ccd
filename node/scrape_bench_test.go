package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcd-appliance/appliance/internal/backupstatus"
	"github.com/etcd-appliance/appliance/internal/etcdtest"
)

// BenchmarkScrapeCost measures what a Prometheus scrape costs a member,
// side by side in one run:
//   - in process, gathering the appliance's collectors (four certificate
//     files, a backup status file, phase, quota) against gathering every
//     metric etcd itself registers, both through client_golang as the
//     /metrics handler does;
//   - over HTTP, /metrics of a running member of ours against upstream
//     etcd's, alternating, with the bytes each serves.
//
// It answers whether our metrics can move the write benchmark's p99
// (BenchmarkVersusUpstream with BENCH_SCRAPE), whose per-round noise is
// about ±10%.
func BenchmarkScrapeCost(b *testing.B) {
	dir := b.TempDir()
	files := map[string]string{}
	for _, role := range []string{"server", "peer", "client_ca", "peer_ca"} {
		files[role] = filepath.Join(dir, role+".crt")
		writeCert(b, files[role], time.Now().AddDate(1, 0, 0))
	}
	status := filepath.Join(dir, "backup-status.json")
	if err := backupstatus.Write(status, backupstatus.Status{File: "x.db", TakenAt: time.Now(), Verified: time.Now(), Revision: 42, Size: 1 << 20}, -1, -1); err != nil {
		b.Fatal(err)
	}
	ec := embed.NewConfig()
	ec.ClientTLSInfo.CertFile, ec.ClientTLSInfo.TrustedCAFile = files["server"], files["client_ca"]
	ec.PeerTLSInfo.CertFile, ec.PeerTLSInfo.TrustedCAFile = files["peer"], files["peer_ca"]
	lc := &lifecycle{n: &statusRecorder{}}
	lc.ready("serving")
	mc := newMemberCollector()
	mc.state.Store(&memberState{ec: ec, lc: lc})
	ours := prometheus.NewRegistry()
	ours.MustRegister(newBackupCollector(status), mc)

	gather := func(g prometheus.Gatherer, n int) (time.Duration, int) {
		samples := 0
		start := time.Now()
		for range n {
			mfs, err := g.Gather()
			if err != nil {
				b.Fatal(err)
			}
			samples = 0
			for _, mf := range mfs {
				samples += len(mf.Metric)
			}
		}
		return time.Since(start) / time.Duration(n), samples
	}
	const n = 2000
	var oursT, etcdT []float64
	var oursS, etcdS int
	for range 5 {
		t, s := gather(ours, n)
		oursT, oursS = append(oursT, float64(t.Microseconds())), s
		t, s = gather(prometheus.DefaultGatherer, n/10)
		etcdT, etcdS = append(etcdT, float64(t.Microseconds())), s
	}
	fmt.Printf("\nin process, per gather (median of 5): the appliance's collectors %.0f µs for %d samples; etcd's registry %.0f µs for %d samples; ours/etcd %.3f\n",
		median(oursT), oursS, median(etcdT), etcdS, median(oursT)/median(etcdT))
	b.ReportMetric(median(oursT), "appliance-µs/gather")
	b.ReportMetric(median(oursT)/median(etcdT), "appliance/etcd")

	// Over HTTP: a member of each, alternating scrapes.
	bins := map[string]string{"ours": filepath.Join(etcdtest.BinDir(b), "etcd"), "upstream": etcdtest.UpstreamBinary(b)}
	urls := map[string]string{}
	for name, bin := range bins {
		c := etcdtest.NewCluster(b, 1)
		c.UseBinary(bin)
		c.Start()
		c.WaitReady(20 * time.Second)
		runLoad(b, c.Endpoints(), 8, time.Second) // histograms with data, as in production
		urls[name] = c.Members[0].ClientURL + "/metrics"
	}
	times := map[string][]float64{}
	size := map[string]int{}
	scrape := func(name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, urls[name], nil)
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		times[name] = append(times[name], float64(time.Since(t0).Microseconds()))
		size[name] = len(body)
	}
	for i := range 400 {
		first, second := "ours", "upstream"
		if i%2 == 1 {
			first, second = second, first
		}
		scrape(first)
		scrape(second)
	}
	// Each pair's ratio, then the median: neighbours share the machine's
	// moment.
	r := median(ratios(times["ours"], times["upstream"]))
	for _, name := range []string{"ours", "upstream"} {
		sort.Float64s(times[name])
	}
	fmt.Printf("over HTTP, 400 scrapes each, alternating: ours %.0f µs (p90 %.0f), %d bytes; upstream %.0f µs (p90 %.0f), %d bytes; time ratio %.3f, size ratio %.3f\n",
		median(times["ours"]), times["ours"][len(times["ours"])*9/10], size["ours"],
		median(times["upstream"]), times["upstream"][len(times["upstream"])*9/10], size["upstream"],
		r, float64(size["ours"])/float64(size["upstream"]))
	b.ReportMetric(r, "scrape-time-ratio")
}
