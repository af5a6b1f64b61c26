package impexp

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const (
	testSecret  = "0123456789abcdef0123456789abcdef01234567"
	otherSecret = "76543210fedcba9876543210fedcba9876543210"
)

func testKey(t testing.TB, now time.Time, validity time.Duration) *KeyPair {
	t.Helper()
	name, err := NewKeyName(now)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := NewKeyPair(name, "node1.example.com", now, validity)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestHandshake(t *testing.T) {
	good, err := ComputeHandshake(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	salt := good[2].(string)
	tampered := []any{good[0], strings.Replace(good[1].(string), good[1].(string)[:1], "x", 1), salt}
	v1 := []any{int64(1), Sha1Hmac(testSecret, "1:"+HandshakeText, salt), salt}
	upper := []any{good[0], strings.ToUpper(good[1].(string)), salt}
	for _, tc := range []struct {
		name      string
		cds       string
		handshake []any
		want      string
	}{
		{"good", testSecret, good, ""},
		{"upper-case digest", testSecret, upper, ""},
		{"wrong secret", otherSecret, good, "Hash didn't match, clusters don't share the same domain secret"},
		{"tampered", testSecret, tampered, "Hash didn't match, clusters don't share the same domain secret"},
		{"other salt", testSecret, []any{good[0], good[1], "00"}, "Hash didn't match, clusters don't share the same domain secret"},
		{"other version", testSecret, v1, "Clusters don't have the same remote import/export protocol (local=0, remote=1)"},
		{"too short", testSecret, good[:2], "Invalid data: not enough values to unpack (expected 3, got 2)"},
		{"too long", testSecret, append(good[:3:3], "x"), "Invalid data: too many values to unpack (expected 3)"},
		{"digest not a string", testSecret, []any{good[0], int64(5), salt}, "Hash didn't match, clusters don't share the same domain secret"},
		{"null salt", testSecret, []any{good[0], good[1], nil}, "Hash didn't match, clusters don't share the same domain secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckHandshake(tc.cds, tc.handshake); got != tc.want {
				t.Errorf("CheckHandshake = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSignedCertificate(t *testing.T) {
	now := time.Now()
	kp := testKey(t, now, CertValidity)
	signed, err := SignCertificate(kp.Cert, testSecret, "abcdef0123456789")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(signed, "X-Ganeti-Signature: abcdef0123456789/") || !strings.Contains(signed, "\n\n-----BEGIN CERTIFICATE-----\n") {
		t.Fatalf("signed certificate:\n%s", signed)
	}
	expired := testKey(t, now.Add(-48*time.Hour), CertValidity)
	signedExpired, err := SignCertificate(expired.Cert, testSecret, "ab")
	if err != nil {
		t.Fatal(err)
	}
	future := testKey(t, now.Add(time.Hour), CertValidity)
	signedFuture, err := SignCertificate(future.Cert, testSecret, "ab")
	if err != nil {
		t.Fatal(err)
	}
	header, body, _ := strings.Cut(signed, "\n\n")
	// A character of the certificate's base64 changed: either not a
	// certificate any more, or not the one that was signed.
	lines := strings.Split(body, "\n")
	mid := []byte(lines[3])
	mid[10] ^= 'A' ^ 'B'
	if mid[10] == lines[3][10] {
		mid[10] = 'C'
	}
	lines[3] = string(mid)
	tamperedBody := header + "\n\n" + strings.Join(lines, "\n")
	other := testKey(t, now, CertValidity)
	swapped := header + "\n\n" + CertPEM(other.Cert.Raw)

	for _, tc := range []struct {
		name    string
		text    string
		cds     string
		loadErr string // "" when it loads
		verify  string // VerifyCertificate's message when it loads
	}{
		{"good", signed, testSecret, "", ""},
		{"wrong secret", signed, otherSecret, "X509 certificate signature is invalid", ""},
		{"certificate swapped", swapped, testSecret, "X509 certificate signature is invalid", ""},
		{"tampered", tamperedBody, testSecret, "*", ""},
		{"header tampered", strings.Replace(signed, "abcdef0123456789/", "abcdef0123456788/", 1), testSecret, "X509 certificate signature is invalid", ""},
		{"no signature", body, testSecret, "X509 certificate signature is missing", ""},
		{"header after the certificate", body + header + "\n", testSecret, "X509 certificate signature is missing", ""},
		{"lower-case header, CRLF", strings.ReplaceAll(strings.Replace(signed, "X-Ganeti-Signature", "x-ganeti-signature", 1), "\n", "\r\n"), testSecret, "", ""},
		{"no certificate", header + "\n\nnothing here\n", testSecret, "no PEM certificate found", ""},
		{"expired", signedExpired, testSecret, "", "Certificate is expired (valid from " + formatTime(expired.Cert.NotBefore) + " to " + formatTime(expired.Cert.NotAfter) + ")"},
		{"not yet valid", signedFuture, testSecret, "", "Certificate not yet valid (valid from " + formatTime(future.Cert.NotBefore) + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, salt, err := LoadSignedCertificate(tc.text, tc.cds)
			switch {
			case tc.loadErr == "" && err != nil:
				t.Fatalf("LoadSignedCertificate: %v", err)
			case tc.loadErr == "*":
				var ge *GenericError
				var le *LoadError
				if !errors.As(err, &ge) && !errors.As(err, &le) {
					t.Fatalf("LoadSignedCertificate: %v, want a signature or load error", err)
				}
				return
			case tc.loadErr != "":
				if err == nil || err.Error() != tc.loadErr {
					t.Fatalf("LoadSignedCertificate: %v, want %q", err, tc.loadErr)
				}
				return
			}
			if salt == "" || cert == nil {
				t.Fatalf("salt %q cert %v", salt, cert)
			}
			if got := VerifyCertificate(cert, now); got != tc.verify {
				t.Errorf("VerifyCertificate = %q, want %q", got, tc.verify)
			}
		})
	}
	if _, err := SignCertificate(kp.Cert, testSecret, "not/a salt"); err == nil {
		t.Error("an invalid salt was accepted")
	}
}

func TestDiskInfo(t *testing.T) {
	magic := DiskMagic("0a1b2c3d4e5f", "inst1.example.com", 1)
	good := ComputeDiskInfo(testSecret, "5a17", 1, "127.0.0.1", 4242, magic)
	with := func(i int, v any) []any {
		out := append([]any(nil), good...)
		out[i] = v
		return out
	}
	named := ComputeDiskInfo(testSecret, "5a17", 0, "Node1.Example.COM.", 4242, magic)
	for _, tc := range []struct {
		name  string
		cds   string
		index int
		info  any
		want  Destination
		err   string
	}{
		{"good", testSecret, 1, good, Destination{Host: "127.0.0.1", Port: "4242", Magic: magic}, ""},
		{"host name normalized", testSecret, 0, named, Destination{Host: "node1.example.com", Port: "4242", Magic: magic}, ""},
		{"port as a string", testSecret, 1, with(1, "4242"), Destination{Host: "127.0.0.1", Port: "4242", Magic: magic}, ""},
		{"wrong secret", otherSecret, 1, good, Destination{}, "HMAC is wrong"},
		{"other disk", testSecret, 0, good, Destination{}, "HMAC is wrong"},
		{"tampered port", testSecret, 1, with(1, int64(4243)), Destination{}, "HMAC is wrong"},
		{"tampered host", testSecret, 1, with(0, "10.0.0.1"), Destination{}, "HMAC is wrong"},
		{"tampered magic", testSecret, 1, with(2, strings.Repeat("0", 40)), Destination{}, "HMAC is wrong"},
		{"missing host", testSecret, 1, with(0, ""), Destination{}, "Missing destination host, port or magic"},
		{"port zero", testSecret, 1, with(1, int64(0)), Destination{}, "Missing destination host, port or magic"},
		{"short", testSecret, 1, good[:4], Destination{}, "Invalid data: not enough values to unpack (expected 5, got 4)"},
		{"not a list", testSecret, 1, int64(3), Destination{}, "Invalid data: cannot unpack non-iterable int object"},
		{"bad host", testSecret, 0, ComputeDiskInfo(testSecret, "s", 0, "a..b", 1, "m"), Destination{}, "Invalid hostname 'a..b'"},
		{"bad port", testSecret, 0, ComputeDiskInfo(testSecret, "s", 0, "h", 70000, "m"), Destination{}, "Invalid service name '70000'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckDiskInfo(tc.cds, tc.index, tc.info)
			if tc.err != "" {
				var ge *GenericError
				if !errors.As(err, &ge) || err.Error() != tc.err {
					t.Fatalf("CheckDiskInfo: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CheckDiskInfo = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestKeyName(t *testing.T) {
	name, err := NewKeyName(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !validKeyName.MatchString(name) || !strings.HasPrefix(name, "x509-2026-01-02_03_04_05-") {
		t.Fatalf("key name %q", name)
	}
	good := []any{name, Sha1Hmac(testSecret, name, "ab12"), "ab12"}
	for _, tc := range []struct {
		name string
		cds  string
		v    []any
		err  string
	}{
		{"good", testSecret, good, ""},
		{"wrong secret", otherSecret, good, "HMAC for X509 key name is wrong"},
		{"tampered", testSecret, []any{name + "x", good[1], good[2]}, "HMAC for X509 key name is wrong"},
		{"short", testSecret, good[:1], "Invalid data for X509 key name: not enough values to unpack (expected 3, got 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckKeyName(tc.cds, tc.v)
			if tc.err == "" {
				if err != nil || got != name {
					t.Fatalf("CheckKeyName = %q, %v", got, err)
				}
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("CheckKeyName: %v, want %q", err, tc.err)
			}
		})
	}
}

// TestGanetiInterop checks the signatures against Ganeti's own code: the
// Python modules of ganeti-3.0 sign and check what this package checks
// and signs.
func TestGanetiInterop(t *testing.T) {
	const ganeti = "/usr/share/ganeti/3.0"
	if _, err := os.Stat(ganeti + "/ganeti/masterd/instance.py"); err != nil {
		msg := "Ganeti's Python modules are needed (apt-get install ganeti-3.0)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	kp := testKey(t, time.Now(), CertValidity)
	goSigned, err := SignCertificate(kp.Cert, testSecret, "0badc0de")
	if err != nil {
		t.Fatal(err)
	}
	handshake, err := ComputeHandshake(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	magic := DiskMagic("abcdef", "inst1.example.com", 2)
	in, _ := json.Marshal(map[string]any{
		"cds": testSecret, "cert": CertPEM(kp.Cert.Raw), "signed": goSigned, "handshake": handshake,
		"disk": ComputeDiskInfo(testSecret, "1234", 2, "127.0.0.1", 4242, magic),
	})
	script := `
import json, sys, OpenSSL
from ganeti import utils
from ganeti.masterd import instance as mi
d = json.load(sys.stdin)
cert = OpenSSL.crypto.load_certificate(OpenSSL.crypto.FILETYPE_PEM, d["cert"])
(_, salt) = utils.LoadSignedX509Certificate(d["signed"], d["cds"])
json.dump({
  "load_salt": salt,
  "handshake": mi.CheckRemoteExportHandshake(d["cds"], d["handshake"]),
  "disk": list(mi.CheckRemoteExportDiskInfo(d["cds"], 2, d["disk"])),
  "signed": utils.SignX509Certificate(cert, d["cds"], "0badc0de"),
  "py_handshake": list(mi.ComputeRemoteExportHandshake(d["cds"])),
  "py_disk": list(mi.ComputeRemoteImportDiskInfo(d["cds"], "99", 0, "192.0.2.1", 1234, "abc")),
  "magic": mi._GetInstDiskMagic("abcdef", "inst1.example.com", 2),
}, sys.stdout)
`
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Dir = ganeti
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got struct {
		LoadSalt    string `json:"load_salt"`
		Handshake   *string
		Disk        []any
		Signed      string
		PyHandshake []any `json:"py_handshake"`
		PyDisk      []any `json:"py_disk"`
		Magic       string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.LoadSalt != "0badc0de" || got.Handshake != nil {
		t.Errorf("Ganeti on Go's signatures: salt %q, handshake %v", got.LoadSalt, *got.Handshake)
	}
	if want := []any{"127.0.0.1", 4242, magic}; jsonString(got.Disk) != jsonString(want) {
		t.Errorf("Ganeti's CheckRemoteExportDiskInfo = %v, want %v", got.Disk, want)
	}
	if got.Signed != goSigned {
		t.Errorf("Ganeti signs\n%s\nthis package signs\n%s", got.Signed, goSigned)
	}
	if got.Magic != magic {
		t.Errorf("magic %s, Ganeti's %s", magic, got.Magic)
	}
	pyHandshake := []any{int64(got.PyHandshake[0].(float64)), got.PyHandshake[1], got.PyHandshake[2]}
	if msg := CheckHandshake(testSecret, pyHandshake); msg != "" {
		t.Errorf("Ganeti's handshake: %s", msg)
	}
	pyDisk := append([]any{}, got.PyDisk...)
	pyDisk[1] = int64(pyDisk[1].(float64))
	if d, err := CheckDiskInfo(testSecret, 0, pyDisk); err != nil || d != (Destination{Host: "192.0.2.1", Port: "1234", Magic: "abc"}) {
		t.Errorf("Ganeti's disk info: %+v, %v", d, err)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/sub/cluster-domain-secret"
	created, err := EnsureSecret(path)
	if err != nil || !created {
		t.Fatalf("EnsureSecret = %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, %v", fi.Mode(), err)
	}
	s, err := ReadSecret(path)
	if err != nil || len(s) != 40 {
		t.Fatalf("ReadSecret = %q, %v", s, err)
	}
	if created, err := EnsureSecret(path); err != nil || created {
		t.Fatalf("second EnsureSecret = %v, %v", created, err)
	}
	if again, _ := ReadSecret(path); again != s {
		t.Fatal("the secret changed")
	}
	for content, want := range map[string]string{"\n\nsecret\n\n": "secret", "two\nlines\n": "", "\n": "", " spaced ": " spaced "} {
		p := dir + "/f"
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSecret(p)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("ReadSecret(%q) = %q, %v; want %q", content, got, err, want)
		}
	}
}

func TestKeys(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	k := &Keys{Dir: dir}
	fresh := testKey(t, now, CertValidity)
	old := testKey(t, now.Add(-48*time.Hour), CertValidity)
	for _, kp := range []*KeyPair{fresh, old} {
		if err := k.Add(kp); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(dir + "/" + fresh.Name + "/key")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	// After a restart, the keys are read from the directory.
	k2 := &Keys{Dir: dir}
	got, err := k2.Get(fresh.Name)
	if err != nil || !got.Cert.Equal(fresh.Cert) {
		t.Fatalf("Get after restart: %v", err)
	}
	for _, name := range []string{"../" + fresh.Name, "x509-nope", fresh.Name + "/key"} {
		if _, err := k2.Get(name); !errors.Is(err, ErrNoKey) {
			t.Errorf("Get(%q): %v, want ErrNoKey", name, err)
		}
	}
	gone, err := k2.Prune(now)
	if err != nil || len(gone) != 1 || gone[0] != old.Name {
		t.Fatalf("Prune = %v, %v", gone, err)
	}
	if _, err := k2.Get(old.Name); !errors.Is(err, ErrNoKey) {
		t.Errorf("expired key still there: %v", err)
	}
	if _, err := k2.Get(fresh.Name); err != nil {
		t.Errorf("fresh key pruned: %v", err)
	}
	mem := &Keys{}
	if err := mem.Add(fresh); err != nil {
		t.Fatal(err)
	}
	if got, err := mem.Get(fresh.Name); err != nil || got != fresh {
		t.Fatalf("in-memory Get: %v", err)
	}
}
