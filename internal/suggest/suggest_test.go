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
