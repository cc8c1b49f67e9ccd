package maintenance

import "strings"

// LedWhileDefragmenting reads one member's log (etcd's own lines, in the
// order it wrote them: raft's "became leader/follower" and the server's
// "starting/finished defragment") and returns the first line at which the
// member led while its own defragmentation ran, or "". Tests use it on
// real members' logs to show leadership is handed away first.
func LedWhileDefragmenting(log string) string {
	leading, defragging := false, false
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, "became leader at term"):
			leading = true
		case strings.Contains(line, "became follower at term"), strings.Contains(line, "became candidate at term"),
			strings.Contains(line, "became pre-candidate at term"):
			leading = false
		case strings.Contains(line, `"starting defragment"`), strings.Contains(line, "msg=starting defragment"):
			defragging = true
		case strings.Contains(line, `"finished defragment"`):
			defragging = false
		}
		if leading && defragging {
			return line
		}
	}
	return ""
}
