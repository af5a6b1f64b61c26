package names

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"
)

// The expected values below are what Ganeti 3.0.2's own functions answer
// (netutils.Hostname.GetNormalizedName, objects.TaggableObject.ValidateTag
// on Debian's Python 3.11); TestAgainstGaneti asks them again when
// Ganeti's Python modules are installed.

func TestNormalizeHostname(t *testing.T) {
	long := strings.Repeat("a", 255)
	cases := []struct {
		in, want, lowered string
		ok                bool
	}{
		{"inst1.example.com", "inst1.example.com", "inst1.example.com", true},
		{"Inst1.Example.COM", "inst1.example.com", "inst1.example.com", true},
		{"x.", "x", "x.", true},
		{"x...", "", "x...", false},
		{"-x", "-x", "-x", true},
		{"_x", "_x", "_x", true},
		{long, long, long, true},
		{long + "a", "", long + "a", false},
		{"", "", "", false},
		{"a b", "", "a b", false},
		{"a/b", "", "a/b", false},
		{"..", "", "..", false},
		{"a..b", "", "a..b", false},
		{".a", "", ".a", false},
		{"tägé", "", "tägé", false},
		{"\u212Anode", "knode", "knode", true},          // KELVIN SIGN lowers to k
		{"\u0130nst", "", "i\u0307nst", false},          // Python's full lowercase mapping
		{"a\n", "", "a\n", false},                       // deliberate: Ganeti accepts it
		{strings.Repeat("x", 1_000_000), "", "", false}, // lowered not compared
	}
	for _, c := range cases {
		got, lowered, ok := NormalizeHostname(c.in)
		name := c.in
		if len(name) > 20 {
			name = name[:20] + "..."
		}
		if ok != c.ok || got != c.want {
			t.Errorf("NormalizeHostname(%q) = %q, %v; want %q, %v", name, got, ok, c.want, c.ok)
		}
		if c.lowered != "" && lowered != c.lowered {
			t.Errorf("NormalizeHostname(%q) lowered %q, want %q", name, lowered, c.lowered)
		}
	}
}

func TestValidObjectName(t *testing.T) {
	for _, ok := range []string{"default", "Group-1", "g_2.x", "a", strings.Repeat("n", 255), "-x", "a..b"} {
		if !ValidObjectName(ok) {
			t.Errorf("ValidObjectName(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", ".", "..", "a b", "a/b", "grüppe", "a\n", strings.Repeat("n", 256), "a%20b", "a?b"} {
		if ValidObjectName(bad) {
			t.Errorf("ValidObjectName(%q) = true", bad)
		}
	}
}

func TestTagProblem(t *testing.T) {
	cases := []struct{ tag, want string }{
		{"tägé", ""},
		{"日本語", ""},
		{"ταυτότητα", ""},
		{"x²", ""}, // SUPERSCRIPT TWO is numeric (No): \w in Python 3
		{"a.b+c*d/e:f@g-h_i", ""},
		{"tag\n", ""}, // Python's "$" before a final newline
		{strings.Repeat("ä", 128), ""},
		{strings.Repeat("ä", 129), "Tag too long (>128 characters)"},
		{strings.Repeat("a", 129), "Tag too long (>128 characters)"},
		{"", "Tags cannot be empty"},
		{"\n", "Tag contains invalid characters"},
		{"bad tag with spaces", "Tag contains invalid characters"},
		{"a\n\n", "Tag contains invalid characters"},
		{"a,b", "Tag contains invalid characters"},
		{"a\u00a0b", "Tag contains invalid characters"}, // NO-BREAK SPACE
		{"😀", "Tag contains invalid characters"},
		{"a\u0301", "Tag contains invalid characters"}, // a combining mark is not \w
	}
	for _, c := range cases {
		if got := TagProblem(c.tag); got != c.want {
			t.Errorf("TagProblem(%q) = %q, want %q", c.tag, got, c.want)
		}
	}
}

// ganeti returns the path of Ganeti 3.0's Python modules, or skips (fails
// under CI=true) when they are not installed.
func ganeti(t *testing.T) string {
	const dir = "/usr/share/ganeti/3.0"
	if _, err := os.Stat(dir + "/ganeti/netutils.py"); err != nil {
		msg := "Ganeti's Python modules are needed (apt-get install ganeti-3.0)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// TestAgainstGaneti runs Ganeti's own GetNormalizedName and ValidateTag on
// a set of names and tags, and checks every assigned code point (Python's
// Unicode 14.0) against TagRune.
func TestAgainstGaneti(t *testing.T) {
	dir := ganeti(t)
	inputs := []string{
		"inst1.example.com", "Inst1.Example.COM", "x.", "x..", "-x", "_x", "a b", "a/b", "..", "a..b", ".a",
		"tägé", "\u212Anode", "\u0130nst", "ÅSA", strings.Repeat("a", 255), strings.Repeat("a", 256),
		"bad tag with spaces", "a.b+c*d/e:f@g-h_i", "", "\n", "a\n\n", "x²", "日本語", "a\u0301", "😀",
		strings.Repeat("ä", 128), strings.Repeat("ä", 129), "a,b", "a\u00a0b", "UPPER", "node-1_2",
	}
	script := `
import json, re, sys, unicodedata
from ganeti import errors, netutils, objects
out = {"hosts": [], "tags": [], "w": []}
for s in json.load(sys.stdin):
    try:
        out["hosts"].append([netutils.Hostname.GetNormalizedName(s), True])
    except errors.OpPrereqError as e:
        out["hosts"].append([e.args[0], False])
    try:
        objects.TaggableObject.ValidateTag(s)
        out["tags"].append("")
    except errors.TagError as e:
        out["tags"].append(e.args[0])
w = re.compile(r"^[\w.+*/:@-]+$")
run = None  # [first, last, matches] over assigned code points
for c in range(0x110000):
    ch = chr(c)
    if ch == "\n" or unicodedata.category(ch) == "Cn":
        run = None
        continue
    m = bool(w.match(ch))
    if run and run[1] == c - 1 and run[2] == m:
        run[1] = c
    else:
        run = [c, c, m]
        out["w"].append(run)
json.dump(out, sys.stdout)
`
	in, _ := json.Marshal(inputs)
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
	cmd.Stdin = strings.NewReader(string(in))
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got struct {
		Hosts [][2]any `json:"hosts"`
		Tags  []string `json:"tags"`
		W     [][3]any `json:"w"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for i, s := range inputs {
		py := got.Hosts[i]
		norm, lowered, ok := NormalizeHostname(s)
		pyOK := py[1].(bool)
		if ok != pyOK {
			t.Errorf("host %q: ok %v, Ganeti %v (%v)", s, ok, pyOK, py[0])
		} else if ok && norm != py[0] {
			t.Errorf("host %q: %q, Ganeti %q", s, norm, py[0])
		} else if !ok && "Invalid hostname '"+lowered+"'" != py[0] {
			t.Errorf("host %q: lowered %q, Ganeti says %v", s, lowered, py[0])
		}
		if p := TagProblem(s); p != got.Tags[i] {
			t.Errorf("tag %q: %q, Ganeti %q", s, p, got.Tags[i])
		}
	}
	bad, checked := 0, 0
	for _, run := range got.W {
		want := run[2].(bool)
		for r := rune(run[0].(float64)); r <= rune(run[1].(float64)); r++ {
			if !utf8.ValidRune(r) {
				continue // surrogates cannot be in a Go string
			}
			checked++
			if TagRune(r) != want {
				if bad++; bad < 10 {
					t.Errorf("U+%04X: TagRune %v, Python's \\w %v", r, !want, want)
				}
			}
		}
	}
	if checked < 100000 {
		t.Fatalf("only %d code points from Python", checked)
	}
	if bad > 0 {
		t.Errorf("%d code points differ", bad)
	}
}
