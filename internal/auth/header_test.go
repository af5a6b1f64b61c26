package auth

import (
	"errors"
	"testing"
)

// TestParseAuthorization: the expectations are what Ganeti 3.0.2's
// _CheckAuthorization gives under CPython 3.11 (400, 401 or the
// credentials); see also TestMatchesPython.
func TestParseAuthorization(t *testing.T) {
	const bad, noCreds = "401", "400"
	cases := []struct {
		header         string
		user, password string
		want           string // "", bad or noCreds
	}{
		{"", "", "", bad},
		{"   ", "", "", bad},
		{"Basic", "", "", noCreds},
		{"basic", "", "", noCreds},
		{"BASIC  ", "", "", noCreds},
		{"Basic YWxpY2U6cHc=", "alice", "pw", ""},
		{"basic YWxpY2U6cHc=", "alice", "pw", ""},
		{"bAsIc\tYWxpY2U6cHc=", "alice", "pw", ""},
		{"Basic YWxpY2U6cHc= trailing junk", "alice", "pw", ""}, // a third field is ignored
		{"Basic YWxpY2U6cHc", "", "", bad},                      // incorrect padding
		{"Basic YWxpY2U6cHc==", "alice", "pw", ""},              // extra padding is fine
		{"Basic YWxp Y2U6cHc=", "", "", bad},                    // only the second field counts
		{"Basic !!!notbase64", "", "", bad},                     // capture seq 41
		{"Basic YWxpY2U=", "", "", bad},                         // no ':'
		{"Basic OnB3", "", "pw", ""},                            // empty user name
		{"Basic YWxpY2U6", "alice", "", ""},                     // empty password
		{"Basic YTpiOmM=", "a", "b:c", ""},                      // split at the first ':'
		{"Digest username=reader", "", "", bad},                 // capture seq 42
		{"Bearer abc", "", "", bad},
		{"Basic\xa0YWxpY2U6cHc=", "alice", "pw", ""},  // Latin-1 no-break space
		{"Basic YWxpY2U6cHc=\x85", "alice", "pw", ""}, // Latin-1 NEL
		{"Basic\x1cYWxpY2U6cHc=", "alice", "pw", ""},  // information separator
		{"Basic Y*W*x*p*Y2U6cHc=", "alice", "pw", ""}, // characters outside the alphabet are skipped
		{"Basic YWxpY2U6cHc=\x00", "alice", "pw", ""},
		{"Basic\x00YWxpY2U6cHc=", "", "", bad}, // NUL is not whitespace: scheme "basic\x00..."
		{"Basic YQ=", "", "", bad},
		{"Basic YQ==", "", "", bad}, // "a": no ':'
		{"Basic YWI=YWI=", "", "", bad},
		{"Basic w6k6eA==", "", "", bad},         // "é:x" is not ASCII
		{"Basic YWxpY2U6cHc=\xff", "", "", bad}, // not ASCII before decoding
		{"Basic YTpiOg=x=", "a", "b:\x0c", ""},  // decoding stops at a complete padding
		{BasicAuthorization("u", "p w:\x01"), "u", "p w:\x01", ""},
	}
	for _, c := range cases {
		user, password, err := ParseAuthorization(c.header)
		got := ""
		switch {
		case errors.Is(err, ErrNoCredentials):
			got = noCreds
		case err != nil:
			got = bad
		}
		if got != c.want || user != c.user || password != c.password {
			t.Errorf("ParseAuthorization(%q) = %q, %q, %v; want %q, %q, %s", c.header, user, password, err, c.user, c.password, c.want)
		}
	}
}

func TestPyB64Decode(t *testing.T) {
	cases := []struct {
		in, out string
		ok      bool
	}{
		{"", "", true},
		{"YTpi", "a:b", true},
		{"YTpi=", "a:b", true},
		{"YQ=", "", false},
		{"YQ==", "a", true},
		{"YQ=x=", "a\x0c", true},
		{"Y=Q==", "a", true},
		{"YWI=YWI=", "ab", true},
		{"=YQ==", "a", true},
		{"Y", "", false},
		{"!!!notbase64", "", false},
	}
	for _, c := range cases {
		out, err := pyB64Decode(c.in)
		if (err == nil) != c.ok || string(out) != c.out {
			t.Errorf("pyB64Decode(%q) = %q, %v; want %q ok=%v", c.in, out, err, c.out, c.ok)
		}
	}
}
