package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{" , ", "", true},
		{"127.0.0.1", "127.0.0.1/32", true},
		{"10.0.0.0/8, 192.0.2.7,fd00::/8", "10.0.0.0/8,192.0.2.7/32,fd00::/8", true},
		{"::1", "::1/128", true},
		{"10.1.2.3/8", "10.0.0.0/8", true},          // masked
		{"::ffff:10.0.0.0/104", "10.0.0.0/8", true}, // IPv4-mapped
		{"::ffff:192.0.2.1", "192.0.2.1/32", true},  // IPv4-mapped
		{"10.0.0.0/33", "", false},                  // bad length
		{"proxy.example.com", "", false},            // names are not resolved
		{"fe80::1%eth0", "", false},                 // zone
		{"1.2.3", "", false},                        // not an address
		{"127.0.0.1:8080", "", false},               // a port
		{"10.0.0.0/8,,bogus/8", "", false},          // one bad item fails all
	} {
		got, err := ParseTrustedProxies(c.in)
		if (err == nil) != c.ok {
			t.Errorf("ParseTrustedProxies(%q): error %v, want ok=%v", c.in, err, c.ok)
			continue
		}
		if c.ok && got.String() != c.want {
			t.Errorf("ParseTrustedProxies(%q) = %q, want %q", c.in, got.String(), c.want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8,127.0.0.1,fd00::/8")
	if err != nil {
		t.Fatal(err)
	}
	const proxy = "127.0.0.1:40000"
	for _, c := range []struct {
		name          string
		trusted       TrustedProxies // default: trusted
		peer          string         // default: proxy
		fwd, xff      []string
		client, proxy string // proxy "": not forwarded (client is the peer)
	}{
		// Whose headers count.
		{name: "untrusted peer, X-Forwarded-For", peer: "192.0.2.9:1234", xff: []string{"203.0.113.5"}, client: "192.0.2.9:1234"},
		{name: "untrusted peer, Forwarded", peer: "192.0.2.9:1234", fwd: []string{"for=203.0.113.5"}, client: "192.0.2.9:1234"},
		{name: "untrusted IPv6 peer", peer: "[2001:db8::9]:1234", xff: []string{"203.0.113.5"}, client: "[2001:db8::9]:1234"},
		{name: "no trusted proxies", trusted: TrustedProxies{}, xff: []string{"203.0.113.5"}, client: proxy},
		{name: "trusted peer, no header", client: proxy},
		{name: "trusted IPv6 peer", peer: "[fd00::1]:443", xff: []string{"203.0.113.5"}, client: "203.0.113.5", proxy: "[fd00::1]:443"},
		{name: "trusted IPv4-mapped peer", peer: "[::ffff:127.0.0.1]:5000", xff: []string{"203.0.113.5"}, client: "203.0.113.5", proxy: "[::ffff:127.0.0.1]:5000"},

		// X-Forwarded-For.
		{name: "xff one address", xff: []string{"203.0.113.5"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff spoofed by the client, appended by the proxy", xff: []string{"6.6.6.6, 203.0.113.5"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff chain through trusted proxies", xff: []string{"198.51.100.1, 203.0.113.5, 10.1.2.3,10.0.0.2"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff several headers", xff: []string{"198.51.100.1", "203.0.113.5, 10.0.0.2"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff several headers, last one trusted", xff: []string{"203.0.113.5", "10.0.0.2"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff IPv6", xff: []string{"2001:db8::1"}, client: "2001:db8::1", proxy: proxy},
		{name: "xff IPv6 bracketed", xff: []string{"[2001:db8::1]"}, client: "2001:db8::1", proxy: proxy},
		{name: "xff IPv6 with port", xff: []string{"[2001:db8::1]:4711"}, client: "[2001:db8::1]:4711", proxy: proxy},
		{name: "xff IPv4 with port", xff: []string{"203.0.113.5:80"}, client: "203.0.113.5:80", proxy: proxy},
		{name: "xff quoted", xff: []string{`"[2001:db8::1]:4711"`}, client: "[2001:db8::1]:4711", proxy: proxy},
		{name: "xff IPv4-mapped", xff: []string{"::ffff:203.0.113.5"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff zone dropped", xff: []string{"fe80::1%eth0"}, client: "fe80::1", proxy: proxy},
		{name: "xff trusted IPv6 hop", xff: []string{"203.0.113.5, fd00::7"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff all trusted: the left-most", xff: []string{"10.0.0.5, 10.0.0.2"}, client: "10.0.0.5", proxy: proxy},
		{name: "xff garbage on the right", xff: []string{"203.0.113.5, garbage"}, client: proxy},
		{name: "xff garbage left of the client", xff: []string{"garbage, 203.0.113.5"}, client: "203.0.113.5", proxy: proxy},
		{name: "xff garbage left of trusted hops", xff: []string{"garbage, 10.0.0.3"}, client: "10.0.0.3", proxy: proxy},
		{name: "xff empty", xff: []string{""}, client: proxy},
		{name: "xff port 0", xff: []string{"203.0.113.5:0"}, client: proxy},

		// Forwarded (RFC 7239).
		{name: "fwd one element", fwd: []string{"for=203.0.113.5"}, client: "203.0.113.5", proxy: proxy},
		{name: "fwd other pairs", fwd: []string{"proto=https;for=192.0.2.60;by=203.0.113.43"}, client: "192.0.2.60", proxy: proxy},
		{name: "fwd name case and spaces", fwd: []string{"Proto=https; FOR = 192.0.2.60 ;by=x"}, client: "192.0.2.60", proxy: proxy},
		{name: "fwd quoted IPv4 with port", fwd: []string{`for="192.0.2.43:47011"`}, client: "192.0.2.43:47011", proxy: proxy},
		{name: "fwd IPv6 with port", fwd: []string{`For="[2001:db8:cafe::17]:4711"`}, client: "[2001:db8:cafe::17]:4711", proxy: proxy},
		{name: "fwd IPv6 without port", fwd: []string{`for="[2001:db8:cafe::17]"`}, client: "2001:db8:cafe::17", proxy: proxy},
		{name: "fwd chain", fwd: []string{"for=198.51.100.1, for=203.0.113.5, for=10.0.0.2"}, client: "203.0.113.5", proxy: proxy},
		{name: "fwd several headers", fwd: []string{"for=198.51.100.1", "for=203.0.113.5", "for=10.0.0.2;proto=http"}, client: "203.0.113.5", proxy: proxy},
		{name: "fwd wins over xff", fwd: []string{"for=203.0.113.5"}, xff: []string{"198.51.100.7"}, client: "203.0.113.5", proxy: proxy},
		{name: "fwd quoted comma elsewhere", fwd: []string{`for=203.0.113.5;ext="a,b"`}, client: "203.0.113.5", proxy: proxy},
		{name: "fwd escaped quote elsewhere", fwd: []string{`ext="a\"b";for=203.0.113.5`}, client: "203.0.113.5", proxy: proxy},
		{name: "fwd unbalanced quote left of the proxy's element", fwd: []string{`for="6.6.6.6, for=203.0.113.5`}, client: "203.0.113.5", proxy: proxy},
		{name: "fwd obfuscated", fwd: []string{"for=_hidden"}, client: "_hidden", proxy: proxy},
		{name: "fwd obfuscated quoted", fwd: []string{`for="_SEVKISEK"`}, client: "_SEVKISEK", proxy: proxy},
		{name: "fwd unknown", fwd: []string{"for=unknown"}, client: "unknown", proxy: proxy},
		{name: "fwd unknown ends the walk", fwd: []string{"for=198.51.100.1, for=unknown, for=10.0.0.2"}, client: "unknown", proxy: proxy},
		{name: "fwd obfuscated ends the walk", fwd: []string{"for=198.51.100.1, for=_hidden"}, client: "_hidden", proxy: proxy},
		{name: "fwd obfuscated port", fwd: []string{`for="[2001:db8::1]:_p1"`}, client: "2001:db8::1", proxy: proxy},
		{name: "fwd obfuscated port IPv4", fwd: []string{`for="192.0.2.1:_x"`}, client: "192.0.2.1", proxy: proxy},
		{name: "fwd bad obfuscated identifier", fwd: []string{"for=_a*b"}, client: proxy},
		{name: "fwd without for", fwd: []string{"proto=https;by=10.0.0.1"}, client: proxy},
		{name: "fwd unterminated quote", fwd: []string{`for="203.0.113.5`}, client: proxy},
		{name: "fwd bad pair", fwd: []string{"for"}, client: proxy},
		{name: "fwd empty", fwd: []string{""}, client: proxy},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := trusted
			if c.trusted != nil {
				tp = c.trusted
			}
			peer := proxy
			if c.peer != "" {
				peer = c.peer
			}
			h := http.Header{}
			for _, v := range c.fwd {
				h.Add("Forwarded", v)
			}
			for _, v := range c.xff {
				h.Add("X-Forwarded-For", v)
			}
			client, gotProxy := tp.ClientAddr(peer, h)
			if client != c.client || gotProxy != c.proxy {
				t.Errorf("ClientAddr(%q, %v) = %q, %q; want %q, %q", peer, h, client, gotProxy, c.client, c.proxy)
			}
		})
	}
}

// TestSamePortClientAddr: behind a trusted proxy, the admission (the
// per-peer anonymous limits) and the legacy handler see the client the
// proxy named as RemoteAddr and the proxy in the context; from another
// peer, the forwarding headers never reach them.
func TestSamePortClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		peer, wantAddr, wantProxy string
		wantHeaders               bool
	}{
		{peer: "10.0.0.1:5000", wantAddr: "203.0.113.5", wantProxy: "10.0.0.1:5000", wantHeaders: true},
		{peer: "192.0.2.9:5000", wantAddr: "192.0.2.9:5000"},
	} {
		var admitted *LegacyCall
		var seenAddr, seenProxy string
		var seenHeaders bool
		legacy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seenAddr, seenProxy = r.RemoteAddr, ProxyFromContext(r.Context())
			seenHeaders = r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != ""
		})
		h := SamePortWith(nil, legacy, SamePortConfig{
			TrustedProxies: trusted,
			Admit: func(_ context.Context, call *LegacyCall) (func(), error) {
				admitted = call
				return func() {}, nil
			},
		})
		r := httptest.NewRequest("GET", "/version", nil)
		r.RemoteAddr = c.peer
		r.Header.Set("X-Forwarded-For", "6.6.6.6, 203.0.113.5")
		r.Header.Set("Forwarded", "for=6.6.6.6, for=203.0.113.5")
		h.ServeHTTP(httptest.NewRecorder(), r)
		if admitted == nil || admitted.RemoteAddr != c.wantAddr || admitted.Proxy != c.wantProxy {
			t.Errorf("peer %s: admitted %+v, want RemoteAddr %q Proxy %q", c.peer, admitted, c.wantAddr, c.wantProxy)
		}
		if seenAddr != c.wantAddr || seenProxy != c.wantProxy || seenHeaders != c.wantHeaders {
			t.Errorf("peer %s: the handler saw RemoteAddr %q proxy %q forwarding headers %v; want %q %q %v",
				c.peer, seenAddr, seenProxy, seenHeaders, c.wantAddr, c.wantProxy, c.wantHeaders)
		}
	}
}
