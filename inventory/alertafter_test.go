package inventory

import (
	"strings"
	"testing"
	"time"
)

// The backup alert needs the schedule's period: systemd's shorthands
// have one; any other calendar gets a warning until alert_after says it.
func TestBackupAlertAfterWarning(t *testing.T) {
	for _, c := range []struct {
		backup string
		warn   bool
	}{
		{`schedule = "hourly"`, false},
		{`schedule = "*:0/15"`, true},
		{"schedule = \"*:0/15\"\nalert_after = \"45m\"", false},
	} {
		text := "version = 1\n[cluster]\nname = \"w\"\n[[member]]\nname = \"m0\"\naddress = \"10.0.0.10\"\n[backup]\n" + c.backup + "\n"
		inv, err := Parse("w.toml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Contains(strings.Join(Warnings(inv), "\n"), "alert_after")
		if got != c.warn {
			t.Errorf("%q: warned %v, want %v: %q", c.backup, got, c.warn, Warnings(inv))
		}
	}
	for in, want := range map[string]time.Duration{"8d": 8 * 24 * time.Hour, "26h": 26 * time.Hour, "90m": 90 * time.Minute} {
		if d, err := ParseAge(in); err != nil || d != want {
			t.Errorf("ParseAge(%q) = %v, %v", in, d, err)
		}
	}
	if _, err := ParseAge("xd"); err == nil {
		t.Error(`ParseAge("xd") did not fail`)
	}
}
