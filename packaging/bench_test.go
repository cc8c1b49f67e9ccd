package packaging

import (
	"os"
	"testing"
	"time"
)

// BenchmarkEtcdPackage builds the etcd deb and rpm and reports their
// sizes; the amd64 deb must stay at or under 12 MB (issue 4: air-gapped
// installs).
func BenchmarkEtcdPackage(b *testing.B) {
	for b.Loop() {
		start := time.Now()
		paths := buildEtcd(b, b.TempDir(), "1")
		b.ReportMetric(time.Since(start).Seconds(), "s/build")
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				b.Fatal(err)
			}
			mb := float64(fi.Size()) / 1e6
			unit := "MB-rpm"
			if p[len(p)-4:] == ".deb" {
				unit = "MB-deb"
				if mb > 12 {
					b.Errorf("%s is %.1f MB, over the 12 MB target", p, mb)
				}
			}
			b.ReportMetric(mb, unit)
		}
	}
}
