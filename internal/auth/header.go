package auth

import (
	"encoding/base64"
	"errors"
)

// Errors of ParseAuthorization. Only ErrNoCredentials is a 400 in Ganeti;
// the others are 401.
var (
	// ErrNoCredentials is "Authorization: Basic" with nothing after it.
	//lint:ignore ST1005 Ganeti's wire text
	ErrNoCredentials = errors.New("Basic authentication requires credentials")
	// ErrEmptyAuthorization is an empty or blank header.
	ErrEmptyAuthorization = errors.New("empty Authorization header")
	// ErrUnsupportedScheme is a scheme other than Basic (Digest included).
	ErrUnsupportedScheme = errors.New("unsupported authentication scheme")
	// ErrMalformedCredentials is Basic credentials that are not ASCII
	// base64 of ASCII "user:password".
	ErrMalformedCredentials = errors.New("malformed Basic credentials")
)

// ParseAuthorization parses an Authorization header value as Ganeti does.
// The value is taken as bytes (Python's HTTP server decodes headers as
// Latin-1): it is stripped of whitespace and split on runs of whitespace;
// the scheme is case-insensitive and must be Basic; the second field (any
// third is ignored) is decoded with Python's lenient base64 decoder
// (characters outside the alphabet are skipped, decoding stops at a
// complete padding) and must give ASCII text with a ':', split at the first
// one.
func ParseAuthorization(value string) (user, password string, err error) {
	parts := splitLatin1Fields(value, 3)
	if len(parts) == 0 {
		return "", "", ErrEmptyAuthorization
	}
	if asciiLower(parts[0]) != "basic" {
		return "", "", ErrUnsupportedScheme
	}
	if len(parts) < 2 {
		return "", "", ErrNoCredentials
	}
	if !isASCII(parts[1]) {
		return "", "", ErrMalformedCredentials
	}
	creds, err := pyB64Decode(parts[1])
	if err != nil || !isASCII(string(creds)) {
		return "", "", ErrMalformedCredentials
	}
	for i, c := range creds {
		if c == ':' {
			return string(creds[:i]), string(creds[i+1:]), nil
		}
	}
	return "", "", ErrMalformedCredentials
}

// BasicAuthorization is the canonical Basic header value for a user and
// password.
func BasicAuthorization(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isLatin1Space is str.isspace for a character of a Latin-1 decoded string.
func isLatin1Space(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, 0x85, 0xa0:
		return true
	}
	return false
}

// splitLatin1Fields is Python's s.strip().split(None, n-1) over the bytes
// of s taken as Latin-1 characters.
func splitLatin1Fields(s string, n int) []string {
	start, end := 0, len(s)
	for start < end && isLatin1Space(s[start]) {
		start++
	}
	for end > start && isLatin1Space(s[end-1]) {
		end--
	}
	s = s[start:end]
	var out []string
	for s != "" {
		if len(out) == n-1 {
			return append(out, s)
		}
		i := 0
		for i < len(s) && !isLatin1Space(s[i]) {
			i++
		}
		out = append(out, s[:i])
		for i < len(s) && isLatin1Space(s[i]) {
			i++
		}
		s = s[i:]
	}
	return out
}

var b64Values = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

var errBase64 = errors.New("invalid base64")

// pyB64Decode is CPython 3.11's binascii.a2b_base64 in its default
// (non-strict) mode, which base64.b64decode uses: characters outside the
// alphabet are skipped, a '=' only counts once two data characters of a
// quantum are seen, a complete padding ends the input, and a trailing
// partial quantum is an error.
func pyB64Decode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)*3/4)
	quad, pads := 0, 0
	var left byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			if quad >= 2 {
				pads++
				if quad+pads >= 4 {
					return out, nil
				}
			}
			continue
		}
		v := b64Values[c]
		if v == 0xff {
			continue
		}
		pads = 0
		switch quad {
		case 0:
			quad, left = 1, v
		case 1:
			quad = 2
			out = append(out, left<<2|v>>4)
			left = v & 0x0f
		case 2:
			quad = 3
			out = append(out, left<<4|v>>2)
			left = v & 0x03
		case 3:
			quad = 0
			out = append(out, left<<6|v)
			left = 0
		}
	}
	if quad != 0 {
		return nil, errBase64
	}
	return out, nil
}
