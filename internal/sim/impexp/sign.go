// Package impexp is Ganeti's remote (inter-cluster) import/export protocol,
// as move-instance drives it through RAPI: the handshake and the
// signatures made with the cluster domain secret (HMAC-SHA1, Ganeti's
// masterd/instance.py and utils/x509.py), the X509 keys of the transfer,
// and a simulated disk transfer over mutually authenticated TLS.
//
// The functions that read what a peer sent (CheckHandshake,
// LoadSignedCertificate, CheckDiskInfo, the import's reading of a disk
// header) take untrusted input: they never panic, and their error
// messages are built here (safe to show to a client), never wrapped Go
// errors.
package impexp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Ganeti's constants of the remote import/export (RIE_*, X509_*).
const (
	// Version is RIE_VERSION, the protocol version.
	Version = 0
	// HandshakeText is RIE_HANDSHAKE.
	HandshakeText = "Hi, I'm Ganeti"
	// CertValidity is RIE_CERT_VALIDITY: the life of an X509 key.
	CertValidity = 24 * time.Hour
	// ConnectTimeout is RIE_CONNECT_TIMEOUT.
	ConnectTimeout = 180 * time.Second
	// SignatureHeader is X509_CERT_SIGNATURE_HEADER.
	SignatureHeader = "X-Ganeti-Signature"
	// CertCN is X509_CERT_CN, the common name the exporting side expects
	// from the importing side's certificate (socat's openssl-commonname).
	CertCN = "ganeti.example.com"
	// maxClockSkew is NODE_MAX_CLOCK_SKEW.
	maxClockSkew = 150 * time.Second
)

// GenericError is Ganeti's errors.GenericError: a check of the protocol
// failed. Its message is safe to show.
type GenericError struct{ Msg string }

func (e *GenericError) Error() string { return e.Msg }

func genericf(format string, args ...any) error {
	return &GenericError{Msg: fmt.Sprintf(format, args...)}
}

// LoadError is a certificate that cannot be parsed (Ganeti's
// OpenSSL.crypto.Error when loading one). Its message is safe to show.
type LoadError struct{ Msg string }

func (e *LoadError) Error() string { return e.Msg }

// GenerateSecret is Ganeti's utils.GenerateSecret: n random bytes in hex.
func GenerateSecret(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Sha1Hmac is Ganeti's utils.Sha1Hmac: the hex HMAC-SHA1 of salt+text.
func Sha1Hmac(key, text, salt string) string {
	h := hmac.New(sha1.New, []byte(key))
	h.Write([]byte(salt))
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

// VerifySha1Hmac is Ganeti's utils.VerifySha1Hmac (digests compare case
// insensitively), in constant time.
func VerifySha1Hmac(key, text, digest, salt string) bool {
	want := Sha1Hmac(key, text, salt)
	return hmac.Equal([]byte(strings.ToLower(digest)), []byte(want))
}

func handshakeMessage(version string) string { return version + ":" + HandshakeText }

// ComputeHandshake is ComputeRemoteExportHandshake: [version, hmac, salt].
func ComputeHandshake(cds string) ([]any, error) {
	salt, err := GenerateSecret(8)
	if err != nil {
		return nil, err
	}
	return []any{int64(Version), Sha1Hmac(cds, handshakeMessage(strconv.Itoa(Version)), salt), salt}, nil
}

// unpackError is Python's message for a sequence of the wrong length
// unpacked into want names.
func unpackError(got, want int) string {
	if got < want {
		return fmt.Sprintf("not enough values to unpack (expected %d, got %d)", want, got)
	}
	return fmt.Sprintf("too many values to unpack (expected %d)", want)
}

// pyStr is Python's "%s" of a JSON value, as Ganeti formats the fields
// of a message it hashes.
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// pyTrue is Python's truth of a JSON value.
func pyTrue(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case int64:
		return x != 0
	case int:
		return x != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}

// hmacOf checks a digest and a salt of a peer's message (strings; no salt
// may be null or empty).
func hmacOf(key, text string, digest, salt any) bool {
	d, ok := digest.(string)
	if !ok {
		return false
	}
	s := ""
	if salt != nil {
		if s, ok = salt.(string); !ok {
			return false
		}
	}
	return VerifySha1Hmac(key, text, d, s)
}

// CheckHandshake is CheckRemoteExportHandshake: "" when the peer's
// handshake was made with the same domain secret and protocol version,
// else Ganeti's message.
func CheckHandshake(cds string, handshake []any) string {
	if len(handshake) != 3 {
		return "Invalid data: " + unpackError(len(handshake), 3)
	}
	version, digest, salt := handshake[0], handshake[1], handshake[2]
	if !hmacOf(cds, handshakeMessage(pyStr(version)), digest, salt) {
		return "Hash didn't match, clusters don't share the same domain secret"
	}
	if n, ok := version.(int64); !ok || n != Version {
		return fmt.Sprintf("Clusters don't have the same remote import/export protocol (local=%d, remote=%s)", Version, pyStr(version))
	}
	return ""
}

var (
	validSalt = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
	// signatureLine is utils.x509.X509_SIGNATURE.
	signatureLine = regexp.MustCompile(`(?is)^` + regexp.QuoteMeta(SignatureHeader) + `:\s*([a-zA-Z0-9]+)/([a-zA-Z0-9]+)$`)
)

// CertPEM is the PEM encoding of a DER certificate, as OpenSSL dumps it.
func CertPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// SignCertificate is SignX509Certificate: the certificate's PEM preceded
// by the header "X-Ganeti-Signature: <salt>/<HMAC of the PEM>".
func SignCertificate(cert *x509.Certificate, key, salt string) (string, error) {
	if !validSalt.MatchString(salt) {
		return "", genericf("Invalid salt: '%s'", salt)
	}
	p := CertPEM(cert.Raw)
	return fmt.Sprintf("%s: %s/%s\n\n%s", SignatureHeader, salt, Sha1Hmac(key, p, salt), p), nil
}

// extractSignature is _ExtractX509CertificateSignature.
func extractSignature(text string) (salt, sign string, err error) {
	for _, line := range splitLines(text) {
		if strings.HasPrefix(line, "---") {
			break
		}
		if m := signatureLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			return m[1], m[2], nil
		}
	}
	return "", "", genericf("X509 certificate signature is missing")
}

// splitLines is Python's str.splitlines for the common line breaks.
func splitLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.Split(s, "\n")
}

// ParseCertificate is ExtractX509Certificate: the first certificate of a
// PEM text, and its PEM as OpenSSL dumps it.
func ParseCertificate(text string) (*x509.Certificate, string, error) {
	rest := []byte(text)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, "", &LoadError{Msg: "no PEM certificate found"}
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, "", &LoadError{Msg: "invalid X509 certificate"}
		}
		return cert, CertPEM(cert.Raw), nil
	}
}

// LoadSignedCertificate is LoadSignedX509Certificate: the certificate of
// a signed PEM text whose signature was made with key, and the
// signature's salt. Errors: *GenericError (signature missing or invalid),
// *LoadError (no certificate).
func LoadSignedCertificate(text, key string) (*x509.Certificate, string, error) {
	salt, sign, err := extractSignature(text)
	if err != nil {
		return nil, "", err
	}
	cert, sane, err := ParseCertificate(text)
	if err != nil {
		return nil, "", err
	}
	if !VerifySha1Hmac(key, sane, sign, salt) {
		return nil, "", genericf("X509 certificate signature is invalid")
	}
	return cert, salt, nil
}

// formatTime is Ganeti's utils.FormatTime.
func formatTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

// VerifyCertificate is VerifyX509Certificate(cert, None, None, False):
// "" for a usable certificate, else Ganeti's message (an expired
// certificate, or one not yet valid).
func VerifyCertificate(cert *x509.Certificate, now time.Time) string {
	if now.After(cert.NotAfter) {
		return fmt.Sprintf("Certificate is expired (valid from %s to %s)", formatTime(cert.NotBefore), formatTime(cert.NotAfter))
	}
	if cert.NotBefore.After(now.Add(maxClockSkew)) {
		return fmt.Sprintf("Certificate not yet valid (valid from %s)", formatTime(cert.NotBefore))
	}
	return ""
}

// diskInfoMessage is _GetRieDiskInfoMessage.
func diskInfoMessage(index int, host, port, magic string) string {
	return fmt.Sprintf("%d:%s:%s:%s", index, host, port, magic)
}

// ComputeDiskInfo is ComputeRemoteImportDiskInfo: the signed
// [host, port, magic, hmac, salt] of one disk of an import.
func ComputeDiskInfo(cds, salt string, index int, host string, port int, magic string) []any {
	msg := diskInfoMessage(index, host, strconv.Itoa(port), magic)
	return []any{host, int64(port), magic, Sha1Hmac(cds, msg, salt), salt}
}

// Destination is where an export sends one disk.
type Destination struct {
	Host  string // an IP address or a normalized host name
	Port  string // a port number or a service name
	Magic string
}

var (
	validHostname = regexp.MustCompile(`^[a-z0-9._-]{1,255}$`)
	validService  = regexp.MustCompile(`^[-_.a-zA-Z0-9]{1,128}$`)
)

// CheckDiskInfo is CheckRemoteExportDiskInfo: the destination of disk
// index from the signed information an import published. Errors are
// *GenericError with Ganeti's messages.
func CheckDiskInfo(cds string, index int, info any) (Destination, error) {
	list, ok := info.([]any)
	if !ok {
		return Destination{}, genericf("Invalid data: cannot unpack non-iterable %s object", pyType(info))
	}
	if len(list) != 5 {
		return Destination{}, genericf("Invalid data: %s", unpackError(len(list), 5))
	}
	host, port, magic := list[0], list[1], list[2]
	if !pyTrue(host) || !pyTrue(port) || !pyTrue(magic) {
		return Destination{}, genericf("Missing destination host, port or magic")
	}
	if !hmacOf(cds, diskInfoMessage(index, pyStr(host), pyStr(port), pyStr(magic)), list[3], list[4]) {
		return Destination{}, genericf("HMAC is wrong")
	}
	h, ok := host.(string)
	if !ok {
		return Destination{}, genericf("Invalid hostname '%s'", pyStr(host))
	}
	if _, err := netip.ParseAddr(h); err != nil {
		h = strings.ToLower(h)
		if !validHostname.MatchString(h) || strings.Contains(h, "..") || strings.HasPrefix(h, ".") {
			return Destination{}, genericf("Invalid hostname '%s'", h)
		}
		h = strings.TrimRight(h, ".")
	}
	p, err := serviceName(port)
	if err != nil {
		return Destination{}, err
	}
	m, ok := magic.(string)
	if !ok {
		return Destination{}, genericf("Invalid magic '%s'", pyStr(magic))
	}
	return Destination{Host: h, Port: p, Magic: m}, nil
}

// serviceName is utils.ValidateServiceName.
func serviceName(v any) (string, error) {
	switch x := v.(type) {
	case int64:
		if x >= 0 && x < 1<<16 {
			return strconv.FormatInt(x, 10), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			if n >= 0 && n < 1<<16 {
				return strconv.Itoa(n), nil
			}
		} else if validService.MatchString(x) {
			return x, nil
		}
	}
	return "", genericf("Invalid service name '%s'", pyStr(v))
}

func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "str"
	case bool:
		return "bool"
	case int64, int:
		return "int"
	case float64:
		return "float"
	case map[string]any:
		return "dict"
	case []any:
		return "list"
	}
	return "object"
}

// DiskMagic is _GetInstDiskMagic: the magic value of disk index of a
// transfer (base: a random value per transfer).
func DiskMagic(base, instanceName string, index int) string {
	h := sha1.New()
	for _, v := range []string{strconv.Itoa(Version), base, instanceName, strconv.Itoa(index)} {
		h.Write([]byte(v))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// equalMagic compares magic values in constant time.
func equalMagic(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// CheckKeyName checks the [name, hmac, salt] of an X509 key name that
// LUBackupPrepare signed, as LUBackupExport does, and returns the name.
// The error's message is Ganeti's.
func CheckKeyName(cds string, v []any) (string, error) {
	if len(v) != 3 {
		return "", genericf("Invalid data for X509 key name: %s", unpackError(len(v), 3))
	}
	if !hmacOf(cds, pyStr(v[0]), v[1], v[2]) {
		return "", genericf("HMAC for X509 key name is wrong")
	}
	name, ok := v[0].(string)
	if !ok {
		return "", genericf("HMAC for X509 key name is wrong")
	}
	return name, nil
}
