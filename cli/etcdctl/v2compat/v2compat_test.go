package v2compat

import (
	"strings"
	"testing"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// Every verb of etcd 2's etcdctl help text, with its flags, and the v2
// global flags and variables: the v3 command spelled out, run only when
// it means the same and loses nothing. v3 command lines pass untouched.
func TestTranslate(t *testing.T) {
	for _, c := range []struct {
		args []string
		// want is the first v3 command as shown ("" for none); not: a
		// v3 command line, left alone.
		want string
		run  bool
		exit int
		note string
		not  bool
	}{
		{args: []string{"set", "/foo", "bar"}, want: "etcdctl put /foo bar", run: true},
		{args: []string{"set", "--", "/foo", "-bar"}, want: "etcdctl put -- /foo -bar", run: true},
		{args: []string{"set", "/foo"}, want: "etcdctl put -- /foo", run: true},
		{args: []string{"set", "--ttl", "5", "/foo", "bar"}, want: "etcdctl lease grant 5", exit: 2, note: "--lease=<ID>"},
		{args: []string{"set", "--swap-with-value", "old", "/foo", "new"}, want: "etcdctl txn <<'EOF'\nvalue(\"/foo\") = \"old\"\n\nput \"/foo\" \"new\"\n\n\nEOF", exit: 2},
		{args: []string{"set", "--swap-with-index=7", "/foo", "new"}, want: "etcdctl txn <<'EOF'\nmod(\"/foo\") = \"REV\"", exit: 2, note: "indexes do not exist"},
		{args: []string{"mk", "/a", "b"}, want: "etcdctl txn <<'EOF'\ncreate(\"/a\") = \"0\"\n\nput \"/a\" \"b\"\n\n\nEOF", exit: 2, note: "only if it is absent"},
		{args: []string{"mk", "--in-order", "/queue", "job"}, exit: 2, note: "no in-order keys"},
		{args: []string{"mk", "--ttl", "9", "/a", "b"}, want: "etcdctl txn", exit: 2, note: "lease grant 9"},
		{args: []string{"mkdir", "/dir"}, exit: 0, note: "no directories"},
		{args: []string{"mkdir", "--ttl", "5", "/dir"}, exit: 2, note: "lease grant 5"},
		{args: []string{"setdir", "/dir"}, exit: 0, note: "no directories"},
		{args: []string{"updatedir", "/dir", "--ttl", "5"}, exit: 2, note: "keep-alive"},
		{args: []string{"rmdir", "/dir"}, want: "etcdctl del /dir", exit: 2, note: "refused a key with a value"},
		{args: []string{"rm", "/foo"}, want: "etcdctl del /foo", run: true},
		{args: []string{"rm", "--dir", "/dir"}, want: "etcdctl del /dir", run: true},
		{args: []string{"rm", "-r", "/dir"}, want: "etcdctl del /dir/ --prefix", exit: 2, note: "/dir-other"},
		{args: []string{"rm", "--recursive", "/dir/"}, want: "etcdctl del /dir/ --prefix", exit: 2},
		{args: []string{"rm", "--with-value", "v", "/foo"}, want: "etcdctl txn <<'EOF'\nvalue(\"/foo\") = \"v\"\n\ndel \"/foo\"", exit: 2},
		{args: []string{"rm", "--with-index", "3", "/foo"}, want: "etcdctl txn <<'EOF'\nmod(\"/foo\")", exit: 2},
		{args: []string{"rm"}, want: "etcdctl del KEY", exit: 2, note: "usage"},
		{args: []string{"update", "/foo", "x"}, want: "etcdctl txn <<'EOF'\nversion(\"/foo\") > \"0\"\n\nput \"/foo\" \"x\"\n\n\nEOF", exit: 2, note: "only if it exists"},
		{args: []string{"ls"}, want: "etcdctl get '' --prefix --keys-only", run: true},
		{args: []string{"ls", "/dir"}, want: "etcdctl get /dir/ --prefix --keys-only", run: true},
		{args: []string{"ls", "-r", "-p", "--sort", "/dir"}, want: "etcdctl get /dir/ --prefix --keys-only", run: true},
		{args: []string{"get", "/foo"}, not: true},
		{args: []string{"get", "--quorum", "/foo"}, want: "etcdctl get /foo --print-value-only", exit: 2, note: "exited 4"},
		{args: []string{"get", "-q", "--sort", "/foo"}, want: "etcdctl get /foo --print-value-only", exit: 2},
		{args: []string{"watch", "/foo"}, not: true},
		{args: []string{"watch", "--recursive", "/dir"}, want: "etcdctl watch --prefix /dir/", exit: 2, note: "until Ctrl-C"},
		{args: []string{"watch", "--recursive", "--forever", "/dir"}, want: "etcdctl watch --prefix /dir/", run: true},
		{args: []string{"watch", "-f", "/foo"}, want: "etcdctl watch /foo", run: true},
		{args: []string{"watch", "--after-index", "5", "/foo"}, want: "etcdctl watch /foo --rev=REV", exit: 2, note: "not v3 revisions"},
		{args: []string{"exec-watch", "--recursive", "/dir", "--", "sh", "-c", "echo $ETCD_WATCH_VALUE"},
			want: "etcdctl watch --prefix /dir -- sh -c 'echo $ETCD_WATCH_VALUE'", exit: 2, note: "ETCD_WATCH_ACTION"},
		{args: []string{"cluster-health"}, want: "etcdctl endpoint health --cluster", run: true},
		{args: []string{"cluster-health", "--forever"}, want: "etcdctl endpoint health --cluster", exit: 2, note: "watch -n 10"},
		{args: []string{"member", "list"}, not: true},
		{args: []string{"-C", "http://127.0.0.1:2379", "member", "list"}, want: "etcdctl --endpoints=http://127.0.0.1:2379 member list", run: true},
		{args: []string{"--peers", "127.0.0.1:2379", "get", "/foo"}, want: "etcdctl --endpoints=127.0.0.1:2379 get /foo", run: true},
		{args: []string{"member", "add", "infra3", "http://10.0.0.3:2380"}, want: "etcdctl member add infra3 --peer-urls=http://10.0.0.3:2380", run: true},
		{args: []string{"member", "update", "8211f1d0f64f3269", "http://10.0.0.3:2380"}, want: "etcdctl member update 8211f1d0f64f3269 --peer-urls=http://10.0.0.3:2380", run: true},
		{args: []string{"member", "remove", "8211f1d0f64f3269"}, not: true},
		{args: []string{"user", "add", "bob"}, not: true},
		{args: []string{"user", "remove", "bob"}, want: "etcdctl user delete bob", run: true},
		{args: []string{"user", "grant", "bob", "--roles", "r1,r2"}, want: "etcdctl user grant-role bob r1", exit: 2, note: "one role at a time"},
		{args: []string{"user", "revoke", "bob", "--roles", "r1"}, want: "etcdctl user revoke-role bob r1", exit: 2},
		{args: []string{"user", "passwd", "bob"}, not: true},
		{args: []string{"user", "get", "bob"}, not: true},
		{args: []string{"role", "add", "r"}, not: true},
		{args: []string{"role", "remove", "r"}, want: "etcdctl role delete r", run: true},
		{args: []string{"role", "grant", "r", "--path", "/foo/*", "--readwrite"}, want: "etcdctl role grant-permission r readwrite /foo/ --prefix", exit: 2, note: "v3 prefix"},
		{args: []string{"role", "revoke", "r", "--path", "/foo/*", "--write"}, want: "etcdctl role revoke-permission r /foo/ --prefix", exit: 2, note: "not only its write half"},
		{args: []string{"auth", "enable"}, not: true},
		{args: []string{"backup", "--data-dir", "/var/lib/etcd/default", "--backup-dir", "/tmp/b"}, exit: 2, note: "snapshot save"},
		{args: []string{"--ca-file", "ca.crt", "--cert-file", "c.crt", "--key-file", "c.key", "-u", "root", "ls", "/"},
			want: "etcdctl --cacert=ca.crt --cert=c.crt --key=c.key --user=root get / --prefix --keys-only", run: true},
		{args: []string{"-u", "root:s3cret", "put", "k", "v"}, want: "etcdctl --user=root:REDACTED put k v", run: true},
		{args: []string{"-o", "extended", "--timeout", "3s", "--total-timeout=9s", "-D", "example.com", "cluster-health"},
			want: "etcdctl -w fields --dial-timeout=3s --command-timeout=9s --discovery-srv=example.com endpoint health --cluster", run: true},
		{args: []string{"--no-sync", "set", "/a", "b"}, want: "etcdctl put /a b", run: true, note: "--no-sync has no v3 equivalent"},
		{args: []string{"--version"}, want: "etcdctl version", run: true},
		{args: []string{"h"}, want: "etcdctl help", run: true},
		{args: []string{"put", "/a", "b"}, not: true},
		{args: []string{"version"}, not: true},
		// v3 command lines whose words after the command look like v2
		// global flags: never rewritten.
		{args: []string{"lock", "l1", "--", "echo", "a", "-o", "json"}, not: true},
		{args: []string{"lock", "l1", "--", "helm", "upgrade", "--timeout", "5m"}, not: true},
		{args: []string{"put", "--", "k2", "-u"}, not: true},
		{args: []string{"watch", "wk", "--", "echo", "fired", "-u", "x"}, not: true},
		{args: []string{"get", "/a", "--prefix"}, not: true},
		{args: []string{"get", "/r", "--rev=8"}, not: true},
		{args: []string{"watch", "k", "--prefix"}, not: true},
		{args: []string{"watch", "-i"}, not: true},
		{args: []string{"member", "add", "x", "--peer-urls=http://10.0.0.3:2380"}, not: true},
		{args: []string{"member", "add", "--peer-urls=http://10.0.0.3:2380", "x"}, not: true},
		{args: []string{"user", "grant-role", "bob", "r"}, not: true},
		{args: []string{"role", "grant-permission", "r", "read", "/a"}, not: true},
		{args: []string{"-w", "json", "get", "k"}, not: true},
		{args: []string{"rm", "/a", "/b"}, want: "etcdctl del /a", exit: 2},
		{args: []string{"--endpoints=http://127.0.0.1:2379", "get", "/a", "--prefix"}, not: true},
		{args: []string{"-w", "json", "endpoint", "status"}, not: true},
		{args: []string{"endpoint", "health", "--cluster"}, not: true},
	} {
		a, ok := Translate(c.args)
		name := strings.Join(c.args, " ")
		if ok == c.not {
			t.Errorf("%s: translated=%v: %+v", name, ok, a)
			continue
		}
		if c.not {
			continue
		}
		first := ""
		if len(a.Commands) > 0 {
			first = a.Commands[0].String()
		}
		if !strings.HasPrefix(first, c.want) || (c.want == "") != (first == "") {
			t.Errorf("%s: command %q, want %q", name, first, c.want)
		}
		if a.Run != c.run || !a.Run && a.Exit != c.exit {
			t.Errorf("%s: run=%v exit=%d, want run=%v exit=%d", name, a.Run, a.Exit, c.run, c.exit)
		}
		msg := a.Message()
		if c.note != "" && !strings.Contains(msg, c.note) {
			t.Errorf("%s: the message lacks %q:\n%s", name, c.note, msg)
		}
		if a.Run && (len(a.Commands) != 1 || a.Commands[0].Stdin != "") {
			t.Errorf("%s: runs, yet is not one plain command: %+v", name, a.Commands)
		}
	}
}

// Every command of etcd 2's etcdctl help text is answered.
func TestEveryV2Verb(t *testing.T) {
	for _, verb := range []string{"backup", "cluster-health", "mk", "mkdir", "rm", "rmdir", "get", "ls", "set", "setdir",
		"update", "updatedir", "watch", "exec-watch", "member", "user", "role", "auth", "help", "h"} {
		// Each with a v2 global flag, so that the shared verbs count as v2.
		if _, ok := Translate([]string{"-C", "http://127.0.0.1:2379", verb, "/k", "v"}); !ok {
			t.Errorf("%s is not answered", verb)
		}
	}
}

// etcd 2's variables: their v3 names set (never over one set already),
// the old ones unset, a note each; they never rewrite a command line.
func TestEnv(t *testing.T) {
	set, unset, notes := Env(envOf("ETCDCTL_PEERS", "http://10.0.0.1:2379", "ETCDCTL_CA_FILE", "/ca.pem",
		"ETCDCTL_CACERT", "/mine.pem", "ETCDCTL_API", "2"))
	if set["ETCDCTL_ENDPOINTS"] != "http://10.0.0.1:2379" || set["ETCDCTL_CACERT"] != "" {
		t.Errorf("set %v", set)
	}
	if strings.Join(unset, " ") != "ETCDCTL_CA_FILE ETCDCTL_PEERS ETCDCTL_API" || len(notes) != 3 {
		t.Errorf("unset %v, notes %q", unset, notes)
	}
}

// Passwords never reach what etcdctl prints.
func TestRedaction(t *testing.T) {
	for _, args := range [][]string{
		{"-u", "root:s3cret", "set", "/a", "b"},
		{"--username=root:s3cret", "ls"},
		{"-C", "http://x:2379", "--password=s3cret", "member", "list"},
		{"-C", "http://x:2379", "--password", "s3cret", "member", "list"},
		{"-C", "http://x:2379", "user", "add", "bob:s3cret"},
	} {
		a, ok := Translate(args)
		if !ok {
			t.Fatalf("%v not answered", args)
		}
		if strings.Contains(a.Message(), "s3cret") {
			t.Errorf("%v: the password is shown:\n%s", args, a.Message())
		}
		if a.Run && !strings.Contains(strings.Join(a.Commands[0].Args, " "), "s3cret") {
			t.Errorf("%v: the command run lost the password: %v", args, a.Commands[0].Args)
		}
	}
}
