package impexp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// KeyPair is an X509 key and its self-signed certificate, which is also
// the CA the peer verifies it with (Ganeti's x509_cert_create on a node).
type KeyPair struct {
	// Name is the key's name (Ganeti's "x509-<timestamp>-<random>").
	Name string
	// Cert is the certificate.
	Cert *x509.Certificate
	// TLS is the certificate with its private key, for crypto/tls.
	TLS tls.Certificate

	certPEM, keyPEM []byte
}

// validKeyName is what NewKeyName produces: a key name from a peer is
// only used after its HMAC was checked, and only when it has this shape.
var validKeyName = regexp.MustCompile(`^x509-[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}-[0-9a-z]{8}$`)

// NewKeyName is the name of a new key created at now (Ganeti's
// tempfile.mkdtemp(prefix="x509-<TimestampForFilename>-")).
func NewKeyName(now time.Time) (string, error) {
	suffix, err := GenerateSecret(4)
	if err != nil {
		return "", err
	}
	return "x509-" + now.UTC().Format("2006-01-02_15_04_05") + "-" + suffix, nil
}

// NewKeyPair creates a key and its self-signed certificate, valid from now
// for validity, with common name host; the certificate also names CertCN,
// the name the exporting side verifies.
func NewKeyPair(name, host string, now time.Time, validity time.Duration) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{CertCN},
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pairOf(name, []byte(CertPEM(der)), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

func pairOf(name string, certPEM, keyPEM []byte) (*KeyPair, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	pair.Leaf = cert
	return &KeyPair{Name: name, Cert: cert, TLS: pair, certPEM: certPEM, keyPEM: keyPEM}, nil
}

// ErrNoKey is returned by Keys.Get for an unknown key name.
var ErrNoKey = errors.New("impexp: no such X509 key")

// Keys keeps the X509 keys of prepared exports until they expire: in
// memory and, when Dir is set, in Dir (Ganeti's crypto directory: one
// directory per key holding "key" and "cert", mode 0600), so that they
// survive a restart.
type Keys struct {
	Dir string

	mu  sync.Mutex
	mem map[string]*KeyPair
}

// Add keeps kp.
func (k *Keys) Add(kp *KeyPair) error {
	if !validKeyName.MatchString(kp.Name) {
		return fmt.Errorf("impexp: invalid key name %q", kp.Name)
	}
	if k.Dir != "" {
		if err := writeKeyDir(k.Dir, kp); err != nil {
			return err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.mem == nil {
		k.mem = map[string]*KeyPair{}
	}
	k.mem[kp.Name] = kp
	return nil
}

func writeKeyDir(dir string, kp *KeyPair) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for name, data := range map[string][]byte{"key": kp.keyPEM, "cert": kp.certPEM} {
		if err := writeSynced(filepath.Join(tmp, name), data); err != nil {
			return err
		}
	}
	return os.Rename(tmp, filepath.Join(dir, kp.Name))
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Get returns the key named name (ErrNoKey when there is none; an expired
// key is returned: the caller checks Cert.NotAfter).
func (k *Keys) Get(name string) (*KeyPair, error) {
	if !validKeyName.MatchString(name) {
		return nil, ErrNoKey
	}
	k.mu.Lock()
	kp := k.mem[name]
	k.mu.Unlock()
	if kp != nil || k.Dir == "" {
		if kp == nil {
			return nil, ErrNoKey
		}
		return kp, nil
	}
	return readKeyDir(k.Dir, name)
}

func readKeyDir(dir, name string) (*KeyPair, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, name, "cert"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoKey
	} else if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, name, "key"))
	if err != nil {
		return nil, err
	}
	return pairOf(name, certPEM, keyPEM)
}

// Prune removes the keys that expired before now and returns their names.
func (k *Keys) Prune(now time.Time) ([]string, error) {
	var gone []string
	k.mu.Lock()
	for name, kp := range k.mem {
		if now.After(kp.Cert.NotAfter) {
			delete(k.mem, name)
			gone = append(gone, name)
		}
	}
	k.mu.Unlock()
	if k.Dir == "" {
		return gone, nil
	}
	entries, err := os.ReadDir(k.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return gone, nil
	} else if err != nil {
		return gone, err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			// Left by a crash (a key being written is younger).
			if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > time.Hour {
				_ = os.RemoveAll(filepath.Join(k.Dir, name))
			}
			continue
		}
		if !e.IsDir() || !validKeyName.MatchString(name) {
			continue
		}
		kp, err := readKeyDir(k.Dir, name)
		if err != nil || now.After(kp.Cert.NotAfter) {
			if rerr := os.RemoveAll(filepath.Join(k.Dir, name)); rerr != nil {
				return gone, rerr
			}
			if !slices.Contains(gone, name) {
				gone = append(gone, name)
			}
		}
	}
	return gone, nil
}
