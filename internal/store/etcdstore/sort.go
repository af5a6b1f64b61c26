package etcdstore

import (
	"slices"
	"strings"
)

func sortEntries[E any](es []E, key func(E) string) {
	slices.SortFunc(es, func(a, b E) int { return strings.Compare(key(a), key(b)) })
}
