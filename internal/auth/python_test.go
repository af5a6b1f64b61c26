package auth

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

const python = "/usr/bin/python3"

// runReference runs testdata/reference.py (Ganeti's code, transcribed) on
// the inputs and returns its JSON verdicts; it skips without Python.
func runReference(t *testing.T, mode string, inputs []string) []json.RawMessage {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	var stdin strings.Builder
	for _, s := range inputs {
		stdin.WriteString(hex.EncodeToString([]byte(s)) + "\n")
	}
	cmd := exec.Command(python, "testdata/reference.py", mode)
	cmd.Stdin = strings.NewReader(stdin.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reference.py: %v", err)
	}
	var verdicts []json.RawMessage
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		verdicts = append(verdicts, json.RawMessage(sc.Text()))
	}
	if len(verdicts) != len(inputs) {
		t.Fatalf("reference.py answered %d of %d inputs", len(verdicts), len(inputs))
	}
	return verdicts
}

// randomInputs concatenates random fragments.
func randomInputs(seed int64, n, maxFrags int, frags []string) []string {
	r := rand.New(rand.NewSource(seed))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for j := r.Intn(maxFrags + 1); j > 0; j-- {
			b.WriteString(frags[r.Intn(len(frags))])
		}
		out[i] = b.String()
	}
	return out
}

// TestMatchesPython compares ParseAuthorization and ParseUsers with
// Ganeti's Python code (testdata/reference.py) on random inputs built from
// the characters that matter: whitespace as Python sees it, base64 padding,
// schemes, separators, non-ASCII and invalid UTF-8.
func TestMatchesPython(t *testing.T) {
	t.Run("Authorization", func(t *testing.T) {
		frags := []string{"Basic", "basic ", "BASIC\t", "Digest ", " ", "\t", "\v", "\r", "\x1c", "\x1f", "\x85", "\xa0", "\x00", "\x80", "\xff",
			"YWxpY2U6cHc=", "YTpi", "Og", "==", "=", "x", "!", "*", "-", "_", "+/", "Zm9v", "QQ", "YQ", ":", "w6k="}
		inputs := randomInputs(1, 20000, 6, frags)
		for i, v := range runReference(t, "header", inputs) {
			user, password, err := ParseAuthorization(inputs[i])
			var got any
			switch {
			case err == ErrNoCredentials:
				got = "400"
			case err != nil:
				got = "401"
			default:
				got = []any{user, password}
			}
			var want any
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseAuthorization(%q) = %v, Ganeti %v", inputs[i], got, want)
			}
		}
	})
	t.Run("UsersFile", func(t *testing.T) {
		frags := []string{"alice", "bob", "pw", "{HA1}", "{ha1}", "{cleartext}", "{CLEARTEXT}", "{}", "{x}", "{", "}", "read", "write",
			",", " ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1f", "\u0085", "\u00a0", "\u2028", "\u3000", "#", "é", "\xff", "\x00",
			HA1("alice", "pw"), strings.ToUpper(HA1("bob", "x")), "READ", "read, write", "a b c"}
		inputs := randomInputs(2, 5000, 14, frags)
		for i, v := range runReference(t, "users", inputs) {
			tab, _, err := ParseUsers([]byte(inputs[i]))
			if string(v) == "null" {
				if err == nil {
					t.Errorf("ParseUsers(%q): Ganeti fails to decode the file, ours parsed it", inputs[i])
				}
				continue
			}
			var want map[string]struct {
				Options    []string
				Candidates []string
				Verdicts   []bool
			}
			if err := json.Unmarshal(v, &want); err != nil {
				t.Fatal(err)
			}
			if err != nil || tab.Len() != len(want) {
				t.Errorf("ParseUsers(%q): %v users (err %v), Ganeti %d", inputs[i], tab.Len(), err, len(want))
				continue
			}
			for name, w := range want {
				u, ok := tab.Lookup(name)
				if !ok || !reflect.DeepEqual(u.Options, append([]string{}, w.Options...)) {
					t.Errorf("ParseUsers(%q): user %q = %+v, Ganeti options %q", inputs[i], name, u, w.Options)
					continue
				}
				for k, c := range w.Candidates {
					if _, ok := tab.Authenticate(name, c); ok != w.Verdicts[k] {
						t.Errorf("ParseUsers(%q): Authenticate(%q, %q) = %v, Ganeti %v", inputs[i], name, c, ok, w.Verdicts[k])
					}
				}
			}
			if t.Failed() {
				return
			}
		}
	})
}
