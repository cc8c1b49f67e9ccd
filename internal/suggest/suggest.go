// Package suggest finds the known word closest to a misspelt one, for "did
// you mean" hints in error messages.
package suggest

// Closest returns the candidate nearest to word by edit distance, if it is
// at most maxDistance away; ties go to the earlier candidate.
func Closest(word string, candidates []string, maxDistance int) (string, bool) {
	best, bestD := "", maxDistance+1
	for _, c := range candidates {
		if d := Distance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best, best != ""
}

// Distance is the Levenshtein distance between a and b.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
