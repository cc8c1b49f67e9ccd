package node

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

type fakeResolver struct {
	names map[string][]string
	local []string
}

func (f fakeResolver) LookupIP(_ context.Context, host string) ([]net.IP, error) {
	addrs, ok := f.names[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var ips []net.IP
	for _, a := range addrs {
		ips = append(ips, net.ParseIP(a))
	}
	return ips, nil
}

func (f fakeResolver) LocalAddrs() ([]net.IP, error) {
	var ips []net.IP
	for _, a := range f.local {
		ips = append(ips, net.ParseIP(a))
	}
	return ips, nil
}

// A member given by DNS name listens on the addresses of this host its
// name resolves to, never on every interface; a name that resolves only
// to loopback (Debian's /etc/hosts line for the host's own name) or to
// another host is a configuration error, one that does not resolve is
// worth a restart.
func TestResolveListen(t *testing.T) {
	r := fakeResolver{
		names: map[string][]string{
			"etcd0.example.com": {"10.0.0.10", "fd00::10", "10.9.9.9"},
			"etcd1.example.com": {"127.0.1.1"},
			"etcd2.example.com": {"10.0.0.12"},
			"db.localhost":      {"127.0.0.1"},
		},
		local: []string{"127.0.0.1", "::1", "127.0.1.1", "10.0.0.10", "fd00::10"},
	}
	parse := func(t *testing.T, peer string) *Config {
		t.Helper()
		c, err := Parse([]string{"--listen-peer-urls=" + peer, "--listen-client-urls=https://10.0.0.10:2379,https://127.0.0.1:2379",
			"--advertise-client-urls=https://10.0.0.10:2379"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("a name in a listen URL must validate (it is resolved at start): %v", err)
		}
		return c
	}
	c := parse(t, "https://etcd0.example.com:2380")
	if err := c.ResolveListen(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range c.Etcd.ListenPeerUrls {
		got = append(got, u.String())
	}
	if strings.Join(got, ",") != "https://10.0.0.10:2380,https://[fd00::10]:2380" {
		t.Errorf("listen peer URLs %v", got)
	}
	if len(c.Etcd.ListenClientUrls) != 2 || c.Etcd.ListenClientUrls[0].Host != "10.0.0.10:2379" {
		t.Errorf("IP listen URLs changed: %v", c.Etcd.ListenClientUrls)
	}
	for _, tc := range []struct {
		peer, want string
		is         error
	}{
		{"https://etcd1.example.com:2380", "127.0.1.1 only, a loopback address", ErrConfig},
		{"https://etcd2.example.com:2380", "none of them an address of this host", ErrConfig},
		{"https://nowhere.example.com:2380", "nowhere.example.com", ErrResolve},
	} {
		err := parse(t, tc.peer).ResolveListen(context.Background(), r)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "fix:") {
			t.Errorf("%s: %v, want %q", tc.peer, err, tc.want)
		}
	}
	c = parse(t, "https://db.localhost:2380")
	if err := c.ResolveListen(context.Background(), r); err != nil || c.Etcd.ListenPeerUrls[0].Host != "127.0.0.1:2380" {
		t.Errorf("a loopback name: %v %v", c.Etcd.ListenPeerUrls, err)
	}
}
