package doctor

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/etcd-appliance/appliance/pki"
	"github.com/etcd-appliance/appliance/workflow/certs"
	"github.com/etcd-appliance/appliance/workflow/localcluster/localclustertest"
)

// TestCertificateExpiryWarnings puts a server certificate that expires in
// ten days in place: etcd serves it at the next handshake, status warns
// from what it is served, doctor from the host's files.
func TestCertificateExpiryWarnings(t *testing.T) {
	lc := localclustertest.Started(t, localclustertest.TLSInventory(t, 1, ""))
	tg := lc.Targets[0]
	findings := func(now time.Time) []Finding {
		var out []Finding
		for _, f := range Run(context.Background(), lc.Inv, tg, Options{Now: func() time.Time { return now }}) {
			if f.Check == "certificates" {
				out = append(out, f)
			}
		}
		return out
	}
	if fs := findings(time.Now()); len(fs) != 1 || fs[0].Severity != OK {
		t.Fatalf("fresh certificates: %+v", fs)
	}
	if cs := localclustertest.Status(t, lc); len(cs.Warnings) != 0 || cs.Rows[0].CertExpires == nil {
		t.Fatalf("fresh status: warnings %v, expiry %v", cs.Warnings, cs.Rows[0].CertExpires)
	}

	ca, err := certs.LoadCA(lc.Certs)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pki.HostLeaves(lc.Inv, tg.Host)[0]
	crt, key, err := ca.Issue(leaf, time.Now().Add(-pki.LeafValidity+10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Key first: etcd reads both at every handshake.
	for _, f := range []struct {
		p string
		b []byte
	}{{lc.Inv.TLS.KeyFile, key}, {lc.Inv.TLS.CertFile, crt}} {
		if err := os.WriteFile(tg.FS.Path(f.p), f.b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cs := localclustertest.Status(t, lc)
	if !cs.Healthy || len(cs.Warnings) != 1 || !strings.Contains(cs.Warnings[0], "m0's server certificate expires on") ||
		!strings.Contains(cs.Warnings[0], "in 9 days") {
		t.Errorf("status with an expiring certificate: healthy %v warnings %q", cs.Healthy, cs.Warnings)
	}
	fs := findings(time.Now())
	if len(fs) != 1 || fs[0].Severity != Warn || !strings.Contains(fs[0].Message, lc.Inv.TLS.CertFile+" expires on") {
		t.Errorf("doctor with an expiring certificate: %+v", fs)
	}
	// Twenty days on it has expired: a failure.
	fs = findings(time.Now().Add(20 * 24 * time.Hour))
	var failed bool
	for _, f := range fs {
		failed = failed || (f.Severity == Fail && strings.Contains(f.Message, "expired on"))
	}
	if !failed {
		t.Errorf("doctor with an expired certificate: %+v", fs)
	}
	// A key that does not belong to the certificate is named.
	_, otherKey, _ := ca.Issue(leaf, time.Now())
	if err := os.WriteFile(tg.FS.Path(lc.Inv.TLS.PeerKeyFile), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	fs = findings(time.Now())
	var mismatch bool
	for _, f := range fs {
		mismatch = mismatch || (f.Severity == Fail && f.Message == lc.Inv.TLS.PeerKeyFile+" does not belong to "+lc.Inv.TLS.PeerCertFile)
	}
	if !mismatch {
		t.Errorf("doctor with a foreign peer key: %+v", fs)
	}
}
