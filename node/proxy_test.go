package node

import "testing"

func TestProxyHealthURL(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "http://127.0.0.1:23790/health"},
		{[]string{"--listen-addr=10.0.0.5:2379", "--endpoints=x"}, "http://10.0.0.5:2379/health"},
		{[]string{"--listen-addr", "0.0.0.0:23790", "--cert-file=/s.crt", "--key-file=/s.key"}, "https://127.0.0.1:23790/health"},
		{[]string{"--listen-addr=[::]:23790", "--unknown-flag", "v"}, "http://127.0.0.1:23790/health"},
		{[]string{"--listen-addr=:23791"}, "http://127.0.0.1:23791/health"},
	} {
		if got := parseProxyFlags(c.args).healthURL(); got != c.want {
			t.Errorf("%q: %s, want %s", c.args, got, c.want)
		}
	}
}
