// Package v2compat answers the etcdctl commands and flags of etcd 2.x,
// which the guides people still copy use (`etcdctl set`, `ls`,
// `cluster-health`, `-C URL`), with their etcd v3 equivalents, spelled out
// with the user's own arguments. Where the v3 command means the same and
// nothing can be lost, it is run after that line; where it does not
// (compare-and-swap, TTLs, recursive deletes, directories), it is shown
// and not run. Nothing is reinterpreted silently.
package v2compat

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/etcd-appliance/appliance/internal/shquote"
)

// Command is one etcdctl v3 command line.
type Command struct {
	// Args follow "etcdctl".
	Args []string
	// Stdin is what it reads (a transaction's requests).
	Stdin string
}

// String is the command as a user types it.
func (c Command) String() string {
	s := "etcdctl " + shquote.Join(redactArgs(c.Args))
	if c.Stdin != "" {
		s += " <<'EOF'\n" + c.Stdin + "EOF"
	}
	return s
}

// Answer is what etcdctl says to a v2 command line.
type Answer struct {
	// Said is the v2 command line as given, for the message.
	Said string
	// Commands are the v3 equivalents, in order.
	Commands []Command
	// Notes explain what differs.
	Notes []string
	// Run: one command that means the same and loses nothing; etcdctl
	// runs it.
	Run bool
	// Exit is the exit code when not run: 0 for what needs nothing in v3
	// (mkdir), 2 otherwise.
	Exit int
}

// Message is the answer as etcdctl prints it (to stderr).
func (a Answer) Message() string {
	var b strings.Builder
	fmt.Fprintf(&b, "etcdctl: `%s` is etcd v2's", a.Said)
	switch len(a.Commands) {
	case 0:
		b.WriteString(".\n")
	case 1:
		b.WriteString("; in etcd v3:\n")
	default:
		b.WriteString("; in etcd v3, in turn:\n")
	}
	// Unindented: a here-document's lines must be copied as they are.
	for _, c := range a.Commands {
		b.WriteString(c.String() + "\n")
	}
	for _, n := range a.Notes {
		b.WriteString(n + "\n")
	}
	switch {
	case a.Run:
		b.WriteString("(running it)\n")
	case a.Exit == 0:
		b.WriteString("(nothing to do)\n")
	default:
		b.WriteString("(not run: check it and run it yourself)\n")
	}
	return b.String()
}

// redactArgs hides passwords in a command line shown to the user: the
// password of -u/--username/--user USER:PASSWORD, --password's value, and
// `user add NAME:PASSWORD`.
func redactArgs(args []string) []string {
	out := append([]string(nil), args...)
	hide := func(v string) string {
		if name, _, ok := strings.Cut(v, ":"); ok {
			return name + ":REDACTED"
		}
		return v
	}
	for i := 0; i < len(out); i++ {
		name, value, hasValue := strings.Cut(out[i], "=")
		switch {
		case name == "--password" && hasValue:
			out[i] = "--password=REDACTED"
		case name == "--password" && i+1 < len(out):
			out[i+1] = "REDACTED"
		case (name == "-u" || name == "--username" || name == "--user") && hasValue:
			out[i] = name + "=" + hide(value)
		case (name == "-u" || name == "--username" || name == "--user") && i+1 < len(out):
			out[i+1] = hide(out[i+1])
		case out[i] == "user" && i+2 < len(out) && out[i+1] == "add":
			out[i+2] = hide(out[i+2])
		}
	}
	return out
}

// flag is an etcdctl v2 flag: its names and whether it takes a value.
type flag struct {
	names []string
	value bool
}

// globals are etcdctl v2's global flags, with their v3 spelling ("" for
// none; "-w" takes a translated value).
var globals = []struct {
	flag
	v3 string
}{
	{flag{[]string{"--peers", "-C", "--endpoint", "--endpoints"}, true}, "--endpoints"},
	{flag{[]string{"--cert-file"}, true}, "--cert"},
	{flag{[]string{"--key-file"}, true}, "--key"},
	{flag{[]string{"--ca-file"}, true}, "--cacert"},
	{flag{[]string{"--username", "-u"}, true}, "--user"},
	{flag{[]string{"--timeout"}, true}, "--dial-timeout"},
	{flag{[]string{"--total-timeout"}, true}, "--command-timeout"},
	{flag{[]string{"--output", "-o"}, true}, "-w"},
	{flag{[]string{"--discovery-srv", "-D"}, true}, "--discovery-srv"},
	{flag{[]string{"--no-sync"}, false}, ""},
	{flag{[]string{"--debug"}, false}, "--debug"},
	{flag{[]string{"--insecure-discovery"}, false}, "--insecure-discovery"},
}

// v3Too are the v2 global flags etcdctl v3 has under the same name.
var v3Too = map[string]bool{"--endpoints": true, "--debug": true, "--insecure-discovery": true, "--discovery-srv": true}

// v3Globals are etcdctl v3's global flags that take a value, so that the
// scan for the command skips their values.
var v3Globals = map[string]bool{
	"--cacert": true, "--cert": true, "--key": true, "--user": true, "--password": true, "--dial-timeout": true,
	"--command-timeout": true, "-w": true, "--write-out": true, "--keepalive-time": true, "--keepalive-timeout": true,
	"-d": true, "--discovery-srv-name": true, "--max-request-bytes": true, "--max-recv-bytes": true, "--auth-jwt-token": true,
}

// envs are etcdctl v2's variables and their v3 names.
var envs = map[string]string{
	"ETCDCTL_PEERS": "ETCDCTL_ENDPOINTS", "ETCDCTL_ENDPOINT": "ETCDCTL_ENDPOINTS", "ETCDCTL_CA_FILE": "ETCDCTL_CACERT",
	"ETCDCTL_CERT_FILE": "ETCDCTL_CERT", "ETCDCTL_KEY_FILE": "ETCDCTL_KEY", "ETCDCTL_USERNAME": "ETCDCTL_USER",
}

// v2Only are the commands etcd v3's etcdctl does not have.
var v2Only = map[string]bool{
	"set": true, "mk": true, "mkdir": true, "rm": true, "rmdir": true, "ls": true, "setdir": true, "update": true,
	"updatedir": true, "exec-watch": true, "cluster-health": true, "backup": true, "h": true,
}

// parsed is a command line split the way etcdctl v2 reads it.
type parsed struct {
	globals []string // v3 global flags, translated
	notes   []string
	v2      bool // a v2 global flag or variable was seen
	command string
	rest    []string // after the command
}

// split reads a command line as etcdctl v2 did: global flags before the
// command, then the command and its own words. Nothing after the command
// is taken for a global flag (a v3 command line such as `lock L -- cmd
// -u` keeps every word where it was).
func split(args []string) parsed {
	var p parsed
	for i := 0; i < len(args); i++ {
		a := args[i]
		if p.command != "" {
			p.rest = append(p.rest, args[i:]...)
			break
		}
		if a == "--" {
			p.rest = append(p.rest, args[i+1:]...)
			break
		}
		name, value, hasValue := strings.Cut(a, "=")
		if g, ok := global(name); ok {
			if g.value && !hasValue && i+1 < len(args) {
				value, i = args[i+1], i+1
			}
			p.v2 = p.v2 || !v3Too[name]
			switch {
			case g.v3 == "":
				p.notes = append(p.notes, name+" has no v3 equivalent and is dropped (etcdctl v3 does not sync the member list unless asked).")
			case g.v3 == "-w":
				w := map[string]string{"simple": "simple", "json": "json", "extended": "fields"}[value]
				if w == "" {
					w = value
				}
				p.globals = append(p.globals, "-w", w)
			case g.value:
				p.globals = append(p.globals, g.v3+"="+value)
			default:
				p.globals = append(p.globals, g.v3)
			}
			continue
		}
		if a == "--version" || a == "-v" {
			p.v2, p.command = true, "--version"
			continue
		}
		if strings.HasPrefix(a, "-") {
			p.globals = append(p.globals, a)
			if v3Globals[name] && !hasValue && i+1 < len(args) {
				i++
				p.globals = append(p.globals, args[i])
			}
			continue
		}
		p.command = a
	}
	return p
}

// Env says what to do about etcdctl v2's variables, whatever the command
// line: their v3 names to set (unless set already), the old ones to unset
// (etcdctl v3 warns of each), and a note each. A variable never overrides
// a flag: etcdctl v3 gives flags precedence over variables.
func Env(getenv func(string) string) (set map[string]string, unset []string, notes []string) {
	set = map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(envs)) {
		v := getenv(k)
		if v == "" {
			continue
		}
		unset = append(unset, k)
		v3 := envs[k]
		if getenv(v3) != "" {
			notes = append(notes, fmt.Sprintf("etcdctl: %s is etcd v2's and %s is set: using %s.", k, v3, v3))
			continue
		}
		set[v3] = v
		notes = append(notes, fmt.Sprintf("etcdctl: %s is etcd v2's: using its value as %s (set that instead).", k, v3))
	}
	if getenv("ETCDCTL_API") == "2" {
		unset = append(unset, "ETCDCTL_API")
		notes = append(notes, "etcdctl: ETCDCTL_API=2 asks for etcd's v2 API, which etcd 3.7 no longer serves: unset it.")
	}
	return set, unset, notes
}

func global(name string) (struct {
	flag
	v3 string
}, bool) {
	for _, g := range globals {
		for _, n := range g.names {
			if n == name {
				return g, true
			}
		}
	}
	return struct {
		flag
		v3 string
	}{}, false
}

// opts is a v2 command's own flags and positional arguments.
type opts struct {
	set  map[string]string // flag (its first name) to value ("" for a bool)
	args []string
}

func (o opts) has(name string) bool { _, ok := o.set[name]; return ok }

func (o opts) arg(i string, n int) string {
	if n < len(o.args) {
		return o.args[n]
	}
	return i
}

// parseOpts reads a command's flags (names[0] is the canonical name).
func parseOpts(rest []string, spec ...flag) opts {
	o := opts{set: map[string]string{}}
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			o.args = append(o.args, rest[i+1:]...)
			break
		}
		name, value, hasValue := strings.Cut(a, "=")
		matched := false
		for _, f := range spec {
			for _, n := range f.names {
				if n != name {
					continue
				}
				matched = true
				if f.value && !hasValue && i+1 < len(rest) {
					value, i = rest[i+1], i+1
				}
				o.set[f.names[0]] = value
			}
		}
		if !matched {
			o.args = append(o.args, a)
		}
	}
	return o
}

var (
	ttl        = flag{[]string{"--ttl"}, true}
	recursive  = flag{[]string{"--recursive", "-r"}, false}
	sortFlag   = flag{[]string{"--sort"}, false}
	quorum     = flag{[]string{"--quorum", "-q"}, false}
	afterIndex = flag{[]string{"--after-index"}, true}
	forever    = flag{[]string{"--forever", "-f"}, false}
)

// Translate answers a v2 etcdctl command line (args without the program
// name; getenv reads the environment). ok is false for a v3 command line,
// which etcdctl runs as it is.
func Translate(args []string) (Answer, bool) {
	p := split(args)
	a := Answer{Said: "etcdctl " + shquote.Join(redactArgs(args)), Exit: 2}
	one := func(run bool, v3 ...string) {
		a.Commands = []Command{{Args: append(append([]string{}, p.globals...), v3...)}}
		a.Run = run
	}
	// need stops a command short of its arguments from running with the
	// placeholders shown in their place.
	need := func(o opts, n int, usage string) bool {
		if len(o.args) >= n {
			return true
		}
		a.Notes = append(a.Notes, "usage: etcdctl "+p.command+" "+usage)
		return false
	}
	txn := func(compare, success string) Command {
		return Command{Args: append(append([]string{}, p.globals...), "txn"), Stdin: compare + "\n\n" + success + "\n\n\n"}
	}
	q := strconv.Quote
	// A transaction's request lines are read by etcdctl's own parser
	// (double quotes, Go escapes), not by a shell.
	req := func(verb string, words ...string) string {
		out := verb
		if len(words) > 0 && strings.HasPrefix(words[0], "-") {
			out += " --"
		}
		for _, w := range words {
			out += " " + q(w)
		}
		return out
	}
	noDirs := "etcd v3 has no directories: keys are flat, and a \"directory\" is a key prefix, which exists as soon as a key under it does."
	leaseNote := func(o opts) {
		if o.has("--ttl") {
			a.Notes = append(a.Notes, "v3 keys expire through a lease, not a TTL of their own: `etcdctl lease grant "+o.set["--ttl"]+
				"` prints a lease ID; add --lease=<ID> to the put.")
		}
	}
	switch p.command {
	case "set":
		o := parseOpts(p.rest, ttl, flag{[]string{"--swap-with-value"}, true}, flag{[]string{"--swap-with-index"}, true})
		key, value := o.arg("KEY", 0), o.arg("VALUE", 1)
		switch {
		case o.has("--swap-with-index"):
			a.Notes = append(a.Notes, "v2 indexes do not exist in v3. Compare the key's modification revision instead: "+
				"`etcdctl get "+shquote.Quote(key)+" -w json` shows it (mod_revision); the transaction below puts only if it is still REV.")
			a.Commands = []Command{txn("mod("+q(key)+") = \"REV\"", req("put", key, value))}
		case o.has("--swap-with-value"):
			a.Commands = []Command{txn("value("+q(key)+") = "+q(o.set["--swap-with-value"]), req("put", key, value))}
			a.Notes = append(a.Notes, "A compare-and-swap is a transaction in v3; it prints SUCCESS or FAILURE (exit 0 either way).")
		case o.has("--ttl"):
			a.Commands = []Command{{Args: append(append([]string{}, p.globals...), "lease", "grant", o.set["--ttl"])},
				{Args: append(append([]string{}, p.globals...), "put", "--lease=<ID>", key, value)}}
			leaseNote(o)
		case len(o.args) == 1:
			// No value: both read it from standard input.
			one(true, "put", "--", key)
		default:
			if strings.HasPrefix(key, "-") || strings.HasPrefix(value, "-") {
				one(need(o, 2, "KEY VALUE"), "put", "--", key, value)
			} else {
				one(need(o, 2, "KEY VALUE"), "put", key, value)
			}
		}
	case "mk":
		o := parseOpts(p.rest, ttl, flag{[]string{"--in-order"}, false})
		key, value := o.arg("KEY", 0), o.arg("VALUE", 1)
		if o.has("--in-order") {
			a.Notes = append(a.Notes, "v3 has no in-order keys (v2 named them after its index): put a key whose name orders as you need, "+
				"such as the prefix followed by a zero-padded counter you keep, or use the revision the put returns.")
			break
		}
		a.Commands = []Command{txn("create("+q(key)+") = \"0\"", req("put", key, value))}
		a.Notes = append(a.Notes, "mk creates a key only if it is absent: in v3 a transaction with that condition; "+
			"it prints SUCCESS, or FAILURE when the key exists (exit 0 either way).")
		leaseNote(o)
	case "update":
		o := parseOpts(p.rest, ttl)
		key, value := o.arg("KEY", 0), o.arg("VALUE", 1)
		a.Commands = []Command{txn("version("+q(key)+") > \"0\"", req("put", key, value))}
		a.Notes = append(a.Notes, "update changes a key only if it exists: in v3 a transaction with that condition; "+
			"it prints SUCCESS, or FAILURE when the key is absent (exit 0 either way).")
		leaseNote(o)
	case "mkdir", "setdir":
		o := parseOpts(p.rest, ttl)
		a.Notes = append(a.Notes, noDirs)
		if o.has("--ttl") {
			a.Notes = append(a.Notes, "A directory TTL expired every key under it: in v3, grant a lease (`etcdctl lease grant "+o.set["--ttl"]+
				"`) and put each key with --lease=<ID>.")
		} else {
			a.Exit = 0
		}
	case "updatedir":
		o := parseOpts(p.rest, ttl)
		a.Notes = append(a.Notes, noDirs, "To change when keys expire, keep them on a lease and refresh it: `etcdctl lease keep-alive <ID>`.")
		_ = o
	case "rmdir":
		o := parseOpts(p.rest)
		a.Notes = append(a.Notes, noDirs+" rmdir removed an empty directory and refused a key with a value; "+
			"`del` deletes the key whatever it holds (keys under it stay), so check it first.")
		one(false, "del", o.arg("KEY", 0))
	case "rm":
		o := parseOpts(p.rest, recursive, flag{[]string{"--dir"}, false}, flag{[]string{"--with-value"}, true}, flag{[]string{"--with-index"}, true})
		key := o.arg("KEY", 0)
		switch {
		case o.has("--recursive"):
			dir := strings.TrimSuffix(key, "/") + "/"
			a.Commands = []Command{{Args: append(append([]string{}, p.globals...), "del", dir, "--prefix")},
				{Args: append(append([]string{}, p.globals...), "del", key)}}
			a.Notes = append(a.Notes, noDirs+" These delete every key under "+dir+" and the key "+key+" itself. "+
				"(`etcdctl del "+key+" --prefix` would also delete keys that merely start with "+key+", such as "+key+"-other.)")
		case o.has("--with-index"):
			a.Notes = append(a.Notes, "v2 indexes do not exist in v3: compare the key's modification revision (`etcdctl get "+shquote.Quote(key)+" -w json`).")
			a.Commands = []Command{txn("mod("+q(key)+") = \"REV\"", req("del", key))}
		case o.has("--with-value"):
			a.Commands = []Command{txn("value("+q(key)+") = "+q(o.set["--with-value"]), req("del", key))}
			a.Notes = append(a.Notes, "A compare-and-delete is a transaction in v3; it prints SUCCESS or FAILURE (exit 0 either way).")
		default:
			if o.has("--dir") {
				a.Notes = append(a.Notes, noDirs+" This deletes the key itself, if there is one; keys under it stay.")
			}
			a.Notes = append(a.Notes, "v3 prints how many keys it deleted, and exits 0 when there was none (v2 exited 4: key not found).")
			one(need(o, 1, "KEY") && len(o.args) == 1 && len(o.set) <= 1, "del", key)
		}
	case "ls":
		o := parseOpts(p.rest, sortFlag, recursive, flag{[]string{"-p"}, false}, quorum)
		key := o.arg("", 0)
		if key != "" && !strings.HasSuffix(key, "/") {
			key += "/"
		}
		a.Notes = append(a.Notes, noDirs+" This lists every key under "+q(key)+", in order (what `ls --recursive` listed).")
		one(len(o.args) <= 1, "get", key, "--prefix", "--keys-only")
	case "get":
		o := parseOpts(p.rest, sortFlag, quorum)
		if !o.has("--sort") && !o.has("--quorum") {
			return plain(a, p)
		}
		if o.has("--quorum") {
			a.Notes = append(a.Notes, "v3 reads are linearizable (what --quorum asked for) unless --consistency=s says otherwise.")
		}
		a.Notes = append(a.Notes, "v3 prints nothing and exits 0 for a key that does not exist (v2 exited 4: key not found).")
		one(false, "get", o.arg("KEY", 0), "--print-value-only")
	case "watch":
		o := parseOpts(p.rest, forever, afterIndex, recursive)
		if !o.has("--forever") && !o.has("--after-index") && !o.has("--recursive") {
			return plain(a, p)
		}
		v3 := []string{"watch"}
		key := o.arg("KEY", 0)
		if o.has("--recursive") {
			v3 = append(v3, "--prefix")
			if !strings.HasSuffix(key, "/") {
				key += "/"
			}
		}
		v3 = append(v3, key)
		if o.has("--after-index") {
			a.Notes = append(a.Notes, "v2 indexes are not v3 revisions: to watch from a point in history, add --rev=REV "+
				"(the header revision of `etcdctl get KEY -w json`).")
			a.Commands = []Command{{Args: append(append(append([]string{}, p.globals...), v3...), "--rev=REV")}}
			break
		}
		if !o.has("--forever") {
			// A script waiting for one change (`etcdctl watch -r /x &&
			// reload`) would wait forever.
			a.Notes = append(a.Notes, "v3 watches until Ctrl-C; v2 stopped after the first change without --forever.")
		}
		one(need(o, 1, "KEY") && o.has("--forever") && len(o.args) == 1, v3...)
	case "exec-watch":
		o := parseOpts(p.rest, afterIndex, recursive)
		v3 := []string{"watch"}
		if o.has("--recursive") {
			v3 = append(v3, "--prefix")
		}
		v3 = append(v3, o.arg("KEY", 0), "--")
		if len(o.args) > 1 {
			v3 = append(v3, o.args[1:]...)
		} else {
			v3 = append(v3, "COMMAND")
		}
		a.Commands = []Command{{Args: append(append([]string{}, p.globals...), v3...)}}
		a.Notes = append(a.Notes, "v3 runs the command with ETCD_WATCH_KEY, ETCD_WATCH_VALUE, ETCD_WATCH_EVENT_TYPE and ETCD_WATCH_REVISION "+
			"(v2 set ETCD_WATCH_ACTION and ETCD_WATCH_MODIFIED_INDEX, which no longer exist): check what the command reads.")
	case "cluster-health":
		o := parseOpts(p.rest, forever)
		if o.has("--forever") {
			a.Commands = []Command{{Args: append(append([]string{}, p.globals...), "endpoint", "health", "--cluster")}}
			a.Notes = append(a.Notes, "v3 checks once; to check every 10 seconds: `watch -n 10 etcdctl endpoint health --cluster`.")
			break
		}
		one(true, "endpoint", "health", "--cluster")
	case "member":
		sub := ""
		if len(p.rest) > 0 {
			sub = p.rest[0]
		}
		o := parseOpts(p.rest[min(1, len(p.rest)):])
		switch {
		case (sub == "add" || sub == "update") && len(o.args) == 2 && len(o.set) == 0 && !strings.Contains(strings.Join(p.rest, " "), "-"+"-peer-urls") &&
			strings.Contains(o.args[1], "://"):
			one(true, "member", sub, o.args[0], "--peer-urls="+o.args[1])
		default:
			return plain(a, p)
		}
	case "user":
		return rename(a, p, map[string]string{"remove": "delete", "grant": "grant-role", "revoke": "revoke-role"}, "--roles")
	case "role":
		return rename(a, p, map[string]string{"remove": "delete", "grant": "grant-permission", "revoke": "revoke-permission"}, "--path")
	case "backup":
		a.Notes = append(a.Notes, "v2's backup copied a data dir. In v3, save a snapshot from a running member: "+
			"`etcdctl snapshot save FILE`, or with this package `etcd-installer backup INVENTORY --out FILE` "+
			"(checksum and metadata beside it; `etcd-installer restore` puts it back).")
	case "h":
		one(true, append([]string{"help"}, p.rest...)...)
	case "--version":
		one(true, "version")
	default:
		return plain(a, p)
	}
	a.Notes = append(p.notes, a.Notes...)
	return a, true
}

// plain answers a v3 command line: untouched, unless v2 global flags came
// before it (-C URL, --ca-file): then the same command with those flags
// in their v3 spelling, which means the same.
func plain(a Answer, p parsed) (Answer, bool) {
	if !p.v2 {
		return Answer{}, false
	}
	a.Commands = []Command{{Args: append(append(append([]string{}, p.globals...), p.command), p.rest...)}}
	a.Run = p.command != ""
	a.Notes = append(p.notes, a.Notes...)
	return a, true
}

// rename answers `user` and `role`, whose v2 subcommands v3 renamed. A
// grant or revoke with v2's list flag (--roles, --path) is shown, not run:
// v2 took several roles, or a path glob with read/write flags, at once.
func rename(a Answer, p parsed, names map[string]string, listFlag string) (Answer, bool) {
	sub := ""
	if len(p.rest) > 0 {
		sub = p.rest[0]
	}
	v3, renamed := names[sub]
	if !renamed {
		return plain(a, p)
	}
	o := parseOpts(p.rest[1:], flag{[]string{listFlag}, true}, flag{[]string{"--read"}, false},
		flag{[]string{"--write"}, false}, flag{[]string{"--readwrite"}, false})
	cmd := func(words ...string) Command {
		return Command{Args: append(append(append([]string{}, p.globals...), p.command, v3), words...)}
	}
	name := o.arg("NAME", 0)
	switch {
	case sub == "remove":
		a.Commands, a.Run = []Command{cmd(name)}, len(o.args) == 1
	case p.command == "user":
		// v2 took a list of roles; v3 one role a command.
		for _, role := range strings.Split(o.set[listFlag], ",") {
			if role = strings.TrimSpace(role); role != "" {
				a.Commands = append(a.Commands, cmd(name, role))
			}
		}
		a.Notes = append(a.Notes, "v3 "+v3+"s one role at a time.")
	default:
		perm := "readwrite"
		for _, f := range []string{"read", "write"} {
			if o.has("--"+f) && !o.has("--readwrite") {
				perm = f
			}
		}
		path := o.set[listFlag]
		words := []string{name}
		if sub == "grant" {
			words = append(words, perm)
		}
		if prefix, ok := strings.CutSuffix(path, "*"); ok {
			words = append(words, prefix, "--prefix")
		} else {
			words = append(words, path)
		}
		a.Commands = []Command{cmd(words...)}
		a.Notes = append(a.Notes, "v2 permissions applied to v2 keys only; a path ending in * is a v3 prefix.")
		if sub == "revoke" && perm != "readwrite" {
			a.Notes = append(a.Notes, "v3 revokes a key's whole permission, not only its "+perm+" half.")
		}
	}
	a.Notes = append(p.notes, a.Notes...)
	return a, true
}
