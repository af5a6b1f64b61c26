package cluster

import (
	"sort"
	"strings"
)

// niceLess orders strings as Ganeti's NiceSort does: runs of digits compare
// as numbers, so "node2" < "node10" and "disk.size/9" < "disk.size/10".
func niceLess(a, b string) bool {
	for a != "" && b != "" {
		ca, ra := nextChunk(a)
		cb, rb := nextChunk(b)
		if ca != cb {
			da, db := isDigit(ca[0]), isDigit(cb[0])
			switch {
			case da && db:
				ta, tb := strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
				if len(ta) != len(tb) {
					return len(ta) < len(tb)
				}
				if ta != tb {
					return ta < tb
				}
				return len(ca) < len(cb) // "01" after "1"
			case da != db:
				return da // numbers before text
			default:
				return ca < cb
			}
		}
		a, b = ra, rb
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// nextChunk splits off the leading run of digits or of non-digits.
func nextChunk(s string) (chunk, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

// niceSort sorts s in place with niceLess.
func niceSort(s []string) {
	sort.SliceStable(s, func(i, j int) bool { return niceLess(s[i], s[j]) })
}

// sortStrings sorts s in place in plain byte order (Ganeti's tag sets).
func sortStrings(s []string) { sort.Strings(s) }
