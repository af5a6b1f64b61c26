// Package etcdtest starts an embedded, single-member etcd for tests, on
// 127.0.0.1, in a temporary directory.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/pkg/v3/proxy"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store/etcdstore"
)

// freeURL returns http://127.0.0.1:<a free port>.
func freeURL() (url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return url.URL{}, err
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}, nil
}

// Options of Launch; zero fields keep etcd's defaults.
type Options struct {
	MaxTxnOps       uint
	MaxRequestBytes uint
}

// Launch starts an etcd member (fsync on) with its data in dir, and
// returns its client URL and the function that stops it.
func Launch(dir string, o Options) (string, func(), error) {
	cfg := embed.NewConfig()
	cfg.Dir = dir
	cfg.Logger = "zap"
	cfg.LogLevel = "fatal" // its shutdown logs errors that are not
	if o.MaxTxnOps > 0 {
		cfg.MaxTxnOps = o.MaxTxnOps
	}
	if o.MaxRequestBytes > 0 {
		cfg.MaxRequestBytes = o.MaxRequestBytes
	}
	cu, err := freeURL()
	if err != nil {
		return "", nil, err
	}
	pu, err := freeURL()
	if err != nil {
		return "", nil, err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return "", nil, errors.New("embedded etcd did not start")
	}
	return cu.String(), e.Close, nil
}

// Start starts an etcd member with etcd's default limits, stopped when the
// test ends, and returns its client URL.
func Start(t testing.TB) string {
	t.Helper()
	endpoint, stop, err := Launch(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return endpoint
}

// Client returns a client of endpoint, closed when the test ends.
func Client(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// Store returns a store on cli under prefix, closed when the test ends.
func Store(t testing.TB, cli *clientv3.Client, prefix string) *etcdstore.Store {
	t.Helper()
	s, err := etcdstore.New(etcdstore.Config{Client: cli, Prefix: prefix, WatchBuffer: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Proxy starts a fault proxy (go.etcd.io/etcd/pkg/v3/proxy) in front of
// the member at endpoint, closed when the test ends, and returns it with
// the client URL that goes through it: PauseTx and PauseRx cut a client
// off, the Unpause calls let it through again.
func Proxy(t testing.TB, endpoint string) (proxy.Server, string) {
	t.Helper()
	from, err := freeURL()
	if err != nil {
		t.Fatal(err)
	}
	return ProxyAt(t, from.Host, endpoint), "http://" + from.Host
}

// ProxyAt is Proxy listening at from (host:port): a new proxy in place of
// one closed, whose clients then reconnect.
func ProxyAt(t testing.TB, from, endpoint string) proxy.Server {
	t.Helper()
	to, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	px := proxy.NewServer(proxy.ServerConfig{Logger: zap.NewNop(),
		From: url.URL{Scheme: "tcp", Host: from}, To: url.URL{Scheme: "tcp", Host: to.Host}})
	t.Cleanup(func() { _ = px.Close() })
	select {
	case <-px.Ready():
	case err := <-px.Error():
		t.Fatal(err)
	}
	return px
}
