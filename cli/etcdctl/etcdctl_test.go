package etcdctl

import (
	"slices"
	"testing"
)

const hostEnv = `# etcdctl settings for etcd cluster prod (read by etcdctl on this host)
ETCDCTL_ENDPOINTS=https://10.0.0.10:2379,https://10.0.0.11:2379
ETCDCTL_CACERT=/etc/etcd/pki/ca.crt
ETCDCTL_CERT=/etc/etcd/pki/client.crt
ETCDCTL_KEY=/etc/etcd/pki/client.key
`

func TestHostEnv(t *testing.T) {
	all := []string{
		"ETCDCTL_ENDPOINTS=https://10.0.0.10:2379,https://10.0.0.11:2379",
		"ETCDCTL_CACERT=/etc/etcd/pki/ca.crt",
		"ETCDCTL_CERT=/etc/etcd/pki/client.crt",
		"ETCDCTL_KEY=/etc/etcd/pki/client.key",
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"nothing set", []string{"get", "foo"}, nil, all},
		{"endpoints flag", []string{"--endpoints=http://127.0.0.1:2379", "get", "foo"}, nil, nil},
		{"endpoints flag, separate value", []string{"get", "--endpoints", "x", "foo"}, nil, nil},
		{"endpoints variable", []string{"get"}, map[string]string{"ETCDCTL_ENDPOINTS": "http://x:2379"}, nil},
		{"own key flag", []string{"--key=/root/me.key", "get"}, nil, []string{all[0], all[1], all[2]}},
		{"own cacert variable", []string{"get"}, map[string]string{"ETCDCTL_CACERT": "/root/ca.pem"}, []string{all[0], all[2], all[3]}},
		{"flag-like key after --", []string{"put", "--", "--endpoints"}, nil, all},
	}
	for _, c := range cases {
		got := HostEnv([]byte(hostEnv), c.args, func(k string) string { return c.env[k] })
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := HostEnv([]byte("ETCDCTL_KEY=\"unterminated\n"), nil, func(string) string { return "" }); got != nil {
		t.Errorf("a broken file gave %q", got)
	}
}
