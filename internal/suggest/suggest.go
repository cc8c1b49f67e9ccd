// Package suggest finds the known word closest to a misspelt one, for "did
// you mean" hints in error messages.
package suggest

import (
	"strings"
	"unicode"
)

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

// Name returns the host name a misspelt name most likely meant: the
// closest within two edits, but not a name that differs only in its
// trailing number (etcd3 is a new host next to etcd0, not a typo of it).
func Name(word string, names []string) (string, bool) {
	if strings.TrimSpace(word) == "" {
		return "", false
	}
	var cands []string
	for _, n := range names {
		if stem(n) != stem(word) || n == word {
			cands = append(cands, n)
		}
	}
	return Closest(word, cands, 2)
}

// stem is a name without its trailing digits.
func stem(s string) string {
	return strings.TrimRightFunc(s, unicode.IsDigit)
}
