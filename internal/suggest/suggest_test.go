package suggest

import "testing"

func TestClosest(t *testing.T) {
	cands := []string{"ETCD_DATA_DIR", "ETCD_NAME", "ETCD_WAL_DIR"}
	for word, want := range map[string]string{"ETCD_NAEM": "ETCD_NAME", "ETCD_DATA_DRI": "ETCD_DATA_DIR", "ETCD_QQQQQQQ": ""} {
		got, ok := Closest(word, cands, 3)
		if got != want || ok != (want != "") {
			t.Errorf("Closest(%s) = %q %v, want %q", word, got, ok, want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance = %d", d)
	}
}

func TestName(t *testing.T) {
	names := []string{"etcd0", "etcd1", "etcd2", "gw"}
	for word, want := range map[string]string{
		"ectd1": "etcd1", // a transposition: the typo operators make
		"etdc1": "etcd1",
		"etcd3": "", // a new member numbered next to the others
		"etcd":  "", // a stem alone is no typo of one of them
		"gx":    "gw",
		"zzz":   "",
	} {
		got, ok := Name(word, names)
		if got != want || ok != (want != "") {
			t.Errorf("Name(%s) = %q %v, want %q", word, got, ok, want)
		}
	}
}
