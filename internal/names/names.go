// Package names holds the naming rules of cluster objects, in one place:
// the codec (internal/legacyjson) checks new node group and network names
// with them, the domain (internal/sim/cluster) instance and node names, tags,
// and the names of a cluster file.
//
//   - Instance (and node) names are host names: Ganeti's
//     netutils.Hostname.GetNormalizedName lowers the name, requires
//     ^[a-z0-9._-]{1,255}$, refuses ".." and a leading ".", and strips
//     trailing dots (NormalizeHostname).
//   - Node group and network names: Ganeti only requires them non-empty;
//     here they must also be addressable by a RAPI path (ValidObjectName).
//   - Tags: Ganeti's TaggableObject.ValidateTag, exactly (TagProblem).
package names

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxHostnameLen is the length limit of Ganeti's host name pattern.
const MaxHostnameLen = 255

// MaxObjectNameLen bounds node group and network names (Ganeti has no
// limit; host names have the same).
const MaxObjectNameLen = 255

// Ganeti's tag limits: constants.MAX_TAG_LEN (in characters) and
// constants.MAX_TAGS_PER_OBJ.
const (
	MaxTagLen     = 128
	MaxTagsPerObj = 4096
)

// NormalizeHostname is Ganeti's Hostname.GetNormalizedName: the name
// lowered (as Python's str.lower) and without trailing dots, and whether
// it is valid. When it is not, lowered is what Ganeti's message shows
// ("Invalid hostname '<lowered>'").
//
// One deliberate difference: Python's "$" also matches before a final
// newline, so Ganeti accepts "name\n" (a name no RAPI path can address);
// it is refused here.
func NormalizeHostname(name string) (normalized, lowered string, ok bool) {
	lowered = pyLower(name)
	if !validHostname(lowered) {
		return "", lowered, false
	}
	return strings.TrimRight(lowered, "."), lowered, true
}

// validHostname is ^[a-z0-9._-]{1,255}$ without "..", not starting with ".".
func validHostname(s string) bool {
	if s == "" || len(s) > MaxHostnameLen || s[0] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// pyLower is Python's str.lower as far as the host name check can tell:
// Go's simple case mapping except for U+0130, whose full lowercase mapping
// (the one Python uses) is "i" followed by U+0307, not "i". The only other
// non-ASCII character that lowers into the host name alphabet, the Kelvin
// sign U+212A, lowers to "k" in both.
func pyLower(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == '\u0130' {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// ValidObjectName reports whether name is acceptable as the name of a new
// node group or network: 1 to 255 characters, each an ASCII letter, a
// digit, '.', '_' or '-' (what Ganeti's RAPI paths, ([\w\._-]+) matched on
// the percent-encoded path, can address), and neither "." nor "..".
// Ganeti itself only requires these names to be non-empty; a name outside
// this rule could be created but never addressed over RAPI again.
func ValidObjectName(name string) bool {
	if name == "" || len(name) > MaxObjectNameLen || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// TagProblem is Ganeti's TaggableObject.ValidateTag: the TagError message
// for an invalid tag, "" for a valid one. A tag has at most MaxTagLen
// characters (code points, as Python's len), is not empty, and matches
// ^[\w.+*/:@-]+$ with Python 3's Unicode \w; Python's "$" also matches
// before a final newline, so one trailing "\n" is accepted, as by Ganeti.
func TagProblem(tag string) string {
	switch {
	case utf8.RuneCountInString(tag) > MaxTagLen:
		return fmt.Sprintf("Tag too long (>%d characters)", MaxTagLen)
	case tag == "":
		return "Tags cannot be empty"
	case !validTag(tag):
		return "Tag contains invalid characters"
	}
	return ""
}

func validTag(tag string) bool {
	body := strings.TrimSuffix(tag, "\n")
	if body == "" {
		return false
	}
	for _, r := range body {
		if !TagRune(r) {
			return false
		}
	}
	return true
}

// TagRune reports whether r may appear in a tag: Python 3's \w (a
// character str.isalnum() accepts, or '_') or one of ".+*/:@-". Python's
// isalnum is exactly Go's letters (L*) and numbers (N*); Go's tables are
// Unicode 15.0 and Python 3.11's 14.0, so characters added in 15.0 are
// accepted here and refused by Ganeti on Python 3.11.
func TagRune(r rune) bool {
	switch r {
	case '_', '.', '+', '*', '/', ':', '@', '-':
		return true
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}
