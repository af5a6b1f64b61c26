package etcdstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DialConfig is how to reach etcd.
type DialConfig struct {
	// Endpoints are the client URLs of the etcd members.
	Endpoints []string
	// CA, Cert and Key name PEM files: the CA that signed the members'
	// certificates (https endpoints), and this client's certificate and
	// key (etcd's --client-cert-auth). Empty: the system's CAs, no client
	// certificate.
	CA, Cert, Key string
	// User and PasswordFile authenticate with etcd's own users (etcd
	// --auth); the file holds the password (one line).
	User, PasswordFile string
}

// Dial returns a client of the etcd members cfg names.
func Dial(cfg DialConfig) (*clientv3.Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	cc := clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 5 * time.Second, DialKeepAliveTimeout: 5 * time.Second}
	if cfg.CA != "" || cfg.Cert != "" || cfg.Key != "" {
		if (cfg.Cert == "") != (cfg.Key == "") {
			return nil, errors.New("etcd: a client certificate needs both the certificate and the key")
		}
		info := transport.TLSInfo{TrustedCAFile: cfg.CA, CertFile: cfg.Cert, KeyFile: cfg.Key}
		var tc *tls.Config
		var err error
		if tc, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
		cc.TLS = tc
	}
	if cfg.PasswordFile != "" && cfg.User == "" {
		return nil, errors.New("etcd: a password file needs a user")
	}
	if cfg.User != "" {
		if cfg.PasswordFile == "" {
			return nil, errors.New("etcd: a user needs a password file")
		}
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("etcd password: %w", err)
		}
		cc.Username, cc.Password = cfg.User, strings.TrimRight(string(b), "\r\n")
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return cli, nil
}
