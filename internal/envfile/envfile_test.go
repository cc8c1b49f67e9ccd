package envfile

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParse(t *testing.T) {
	in := "# comment\n" +
		"; also a comment\n" +
		"\n" +
		"  A=plain\n" +
		"B = spaced value  \n" +
		`C="double \"quoted\" \$HOME \\ \x"` + "\n" +
		"D='single $HOME \\n'\n" +
		"E=con\\\ntinued\n" +
		"F=\r\n" +
		"G=mix\"ed \"'and'\n" +
		`H="multi` + "\n" + `line"` + "\n" +
		"I=last"
	got, err := Parse("test.conf", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{"A", "plain", 4},
		{"B", "spaced value", 5},
		{"C", `double "quoted" $HOME \ \x`, 6},
		{"D", `single $HOME \n`, 7},
		{"E", "continued", 8},
		{"F", "", 10},
		{"G", "mixed and", 11},
		{"H", "multi\nline", 12},
		{"I", "last", 14},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v want %+v", i, got[i], want[i])
		}
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"JUSTAKEY\n":    "test.conf:1: line \"JUSTAKEY\" has no '='",
		"A=1\n1BAD=x\n": "test.conf:2: invalid variable name \"1BAD\"",
		"A-B=x":         "invalid variable name \"A-B\"",
		"A=\"open\n":    "test.conf:1: unterminated double quote",
		"A='open":       "unterminated single quote",
		"export A=1\n":  "invalid variable name \"export A\"",
	} {
		_, err := Parse("test.conf", strings.NewReader(in))
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func TestEnviron(t *testing.T) {
	es := []Entry{{Key: "A", Value: "1"}, {Key: "B", Value: "2"}, {Key: "A", Value: "3"}}
	if got := strings.Join(Environ(es), " "); got != "A=3 B=2" {
		t.Errorf("got %q", got)
	}
	if Map(es)["A"] != "3" {
		t.Error("Map: later assignment must win")
	}
}

func TestQuoteRefusesControlCharacters(t *testing.T) {
	for _, v := range []string{"a\nb", "a\rb", "a\x00b", "\x1b[31m"} {
		if _, err := Quote(v); err == nil {
			t.Errorf("Quote(%q) accepted a control character", v)
		}
	}
}

// FuzzQuoteRoundTrip: whatever Quote accepts, Parse reads back unchanged,
// as the only assignment of its line.
func FuzzQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", "with space", `q"uote`, `back\slash`, "$HOME", "a'b", " lead", "trail ", "#hash", "x=y", "http://a:1,http://b:2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !utf8.ValidString(v) {
			return
		}
		q, err := Quote(v)
		if err != nil {
			return
		}
		if strings.ContainsAny(q, "\n\r") {
			t.Fatalf("Quote(%q) = %q spans lines", v, q)
		}
		es, err := Parse("f", strings.NewReader("K="+q+"\nNEXT=1\n"))
		if err != nil {
			t.Fatalf("Parse(K=%s): %v", q, err)
		}
		if len(es) != 2 || es[0].Key != "K" || es[0].Value != v || es[1].Key != "NEXT" {
			t.Fatalf("round trip of %q via %q gave %+v", v, q, es)
		}
	})
}
