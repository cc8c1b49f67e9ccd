package inventory

import (
	"errors"
	"strings"
	"testing"
)

func TestForEndpoints(t *testing.T) {
	inv, err := ForEndpoints([]string{"http://10.0.0.1:2379", "http://[fd00::2]:2379/", "http://etcd-3.example:12379"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inv.ClientURLs(), " "); got != "http://10.0.0.1:2379 http://[fd00::2]:2379 http://etcd-3.example:12379" {
		t.Errorf("client URLs: %s", got)
	}
	if inv.TLSEnabled() {
		t.Error("TLS on for http endpoints")
	}
	if inv, err := ForEndpoints([]string{"https://10.0.0.1:2379"}); err != nil || !inv.TLSEnabled() {
		t.Errorf("https: %v", err)
	}
	for _, bad := range [][]string{nil, {"10.0.0.1:2379"}, {"http://10.0.0.1"}, {"http://10.0.0.1:2379/v2/keys"}, {"unix:///run/etcd.sock"},
		{"http://u:secret@10.0.0.1:2379"}, {"http://10.0.0.1:2379", "https://10.0.0.2:2379"}, {"http://10.0.0.1:99999"}} {
		_, err := ForEndpoints(bad)
		if !errors.Is(err, ErrEndpoints) {
			t.Errorf("%q: %v", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error repeats a password: %v", bad, err)
		}
	}
}
