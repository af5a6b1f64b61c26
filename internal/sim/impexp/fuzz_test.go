package impexp

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzSignedCertificate feeds arbitrary text to the decoder of the other
// cluster's signed X509 CA (source_x509_ca, destination_x509_ca).
func FuzzSignedCertificate(f *testing.F) {
	kp := testKey(f, time.Now(), CertValidity)
	signed, err := SignCertificate(kp.Cert, testSecret, "abc123")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add(strings.ReplaceAll(signed, "\n", "\r\n"))
	f.Add("X-Ganeti-Signature: a/b\n\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, text string) {
		cert, salt, err := LoadSignedCertificate(text, testSecret)
		if err != nil {
			if cert != nil {
				t.Fatal("a certificate with an error")
			}
			return
		}
		// It loaded: the signature is the one made with the secret.
		again, err := SignCertificate(cert, testSecret, salt)
		if err != nil {
			t.Fatalf("salt %q of a loaded certificate: %v", salt, err)
		}
		if _, _, err := LoadSignedCertificate(again, testSecret); err != nil {
			t.Fatalf("re-signed certificate: %v", err)
		}
		_ = VerifyCertificate(cert, time.Now())
	})
}

// FuzzPeerInput feeds arbitrary JSON to the decoders of what the other
// cluster sends through move-instance (disk information, handshake, key
// name) and arbitrary lines to the import's header parser.
func FuzzPeerInput(f *testing.F) {
	good, _ := json.Marshal(ComputeDiskInfo(testSecret, "5a17", 0, "127.0.0.1", 4242, "00ff"))
	hs, _ := ComputeHandshake(testSecret)
	hsJSON, _ := json.Marshal(hs)
	for _, s := range [][]byte{good, hsJSON, []byte(`["x509-2026-01-02_03_04_05-0a1b2c3d","00",""]`), []byte(`{"a":1}`),
		[]byte(`["h", 1e300, "m", null, 5]`), []byte("00ff 1024"), []byte(`[]`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = ParseHeader(string(data))
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var raw any
		if dec.Decode(&raw) != nil {
			return
		}
		v := jsonLike(raw)
		dest, err := CheckDiskInfo(testSecret, 0, v)
		// Only the signed information passes (a forgery needs the secret).
		if err == nil && dest != (Destination{Host: "127.0.0.1", Port: "4242", Magic: "00ff"}) {
			t.Fatalf("disk info %s accepted as %+v", data, dest)
		}
		if list, ok := v.([]any); ok {
			_ = CheckHandshake(testSecret, list)
			_, _ = CheckKeyName(testSecret, list)
		}
	})
}

// jsonLike is what the executors get from a structpb value: integral
// numbers as int64, others as float64.
func jsonLike(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case []any:
		for i := range x {
			x[i] = jsonLike(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = jsonLike(x[k])
		}
		return x
	}
	return v
}
