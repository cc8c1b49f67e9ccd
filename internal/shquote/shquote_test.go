package shquote

import (
	"os/exec"
	"testing"
)

// Every word comes back from sh as it went in.
func TestQuoteRoundTrip(t *testing.T) {
	words := []string{"plain", "", "two words", "it's", `"double"`, "$HOME", "`id`", "a;b", "[::1]:2379", "*", "-n", "new\nline", "back\\slash", "x'y'z"}
	out, err := exec.Command("sh", "-c", "printf '%s\\0' "+Join(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	start := 0
	for i, b := range out {
		if b == 0 {
			got = append(got, string(out[start:i]))
			start = i + 1
		}
	}
	if len(got) != len(words) {
		t.Fatalf("got %q", got)
	}
	for i := range words {
		if got[i] != words[i] {
			t.Errorf("%q came back as %q", words[i], got[i])
		}
	}
	if Quote("a/b-c.d=e") != "a/b-c.d=e" {
		t.Error("a safe word was quoted")
	}
}
