package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// TrustedProxies are the reverse proxies whose forwarding headers
// (Forwarded, X-Forwarded-For) name a request's client. A request whose
// TCP peer is not among them keeps its peer as the client, and its
// forwarding headers are dropped.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies parses a comma-separated list of addresses and CIDR
// prefixes ("10.0.0.0/8, 192.0.2.7, fd00::/8"); empty items are ignored.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		if strings.Contains(item, "/") {
			var err error
			if p, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("%q is not an address or a CIDR prefix", item)
			}
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			p = p.Masked()
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not an address or a CIDR prefix", item)
			}
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out, nil
}

func (t TrustedProxies) String() string {
	s := make([]string, len(t))
	for i, p := range t {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Set parses a flag value (ParseTrustedProxies).
func (t *TrustedProxies) Set(s string) error {
	v, err := ParseTrustedProxies(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

func (t TrustedProxies) trusts(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr returns the client of a request with TCP peer remoteAddr
// ("ip:port") and headers h. When the peer is not a trusted proxy, or the
// request has no forwarding header, the client is the peer and proxy is
// empty. Otherwise the header is Forwarded (RFC 7239, its for= values)
// when the request has one, else X-Forwarded-For, and the client is its
// right-most hop that is not a trusted proxy itself (every hop further
// left could have been written by the client); proxy is the peer. A hop
// is an address ("192.0.2.1", "2001:db8::1", with ":port" / "[...]:port"
// when the header gives a numeric port) or an obfuscated identifier
// ("unknown", "_hidden"), which is never trusted. When every hop is
// trusted, the left-most is the client. A hop that is neither (or a
// Forwarded element without for=) ends the walk: the client is then the
// last trusted hop read, or the peer (with an empty proxy) when there is
// none.
func (t TrustedProxies) ClientAddr(remoteAddr string, h http.Header) (client, proxy string) {
	if len(t) == 0 || !t.trusts(peerAddr(remoteAddr)) {
		return remoteAddr, ""
	}
	var hops []string // right to left
	if v := h.Values("Forwarded"); len(v) > 0 {
		for i := len(v) - 1; i >= 0; i-- {
			for _, elem := range elementsRightToLeft(v[i]) {
				hops = append(hops, forwardedFor(elem))
			}
		}
	} else {
		v := h.Values("X-Forwarded-For")
		for i := len(v) - 1; i >= 0; i-- {
			items := strings.Split(v[i], ",")
			for j := len(items) - 1; j >= 0; j-- {
				hops = append(hops, strings.TrimSpace(items[j]))
			}
		}
	}
	last := ""
	for _, hop := range hops {
		n, ok := parseNode(hop)
		if !ok {
			break
		}
		last = n.String()
		if !n.addr.IsValid() || !t.trusts(n.addr) {
			return last, remoteAddr
		}
	}
	if last == "" {
		return remoteAddr, ""
	}
	// Every hop (up to an unreadable one) is a trusted proxy: the
	// left-most of them sent the request.
	return last, remoteAddr
}

// peerAddr is the address of a RemoteAddr ("ip:port"); invalid when it
// is not an IP address.
func peerAddr(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a
}

// elementsRightToLeft splits a Forwarded value into its comma-separated
// elements, the right-most first. Commas inside quoted strings do not
// split; the value is scanned from the right, so a malformed part (an
// unbalanced quote, which a client may send) spoils only the elements at
// and left of it, not those a proxy appended after it.
func elementsRightToLeft(v string) []string {
	var out []string
	inQuote := false
	end := len(v)
	for i := len(v) - 1; i >= 0; i-- {
		switch v[i] {
		case '"':
			if i == 0 || v[i-1] != '\\' {
				inQuote = !inQuote
			}
		case ',':
			if !inQuote {
				out = append(out, v[i+1:end])
				end = i
			}
		}
	}
	return append(out, v[:end])
}

// forwardedFor is the for= value of a Forwarded element (pairs
// separated by ";", a value a token or a quoted string), unquoted; empty
// when it has none or is malformed.
func forwardedFor(elem string) string {
	rest := elem
	for {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return ""
		}
		after = strings.TrimLeft(after, " \t")
		var value string
		if strings.HasPrefix(after, `"`) {
			if value, after, ok = unquote(after); !ok {
				return ""
			}
		} else {
			i := strings.IndexByte(after, ';')
			if i < 0 {
				i = len(after)
			}
			value, after = strings.TrimSpace(after[:i]), after[i:]
		}
		if strings.EqualFold(strings.TrimSpace(name), "for") {
			return value
		}
		after = strings.TrimLeft(after, " \t")
		if !strings.HasPrefix(after, ";") {
			return ""
		}
		rest = after[1:]
	}
}

// unquote reads the quoted string s begins with (backslash escapes a
// character); rest is what follows it.
func unquote(s string) (value, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i++; i == len(s) {
				return "", "", false
			}
		}
		b.WriteByte(s[i])
	}
	return "", "", false
}

// node is a hop of a forwarding header: an address with an optional
// port, or an obfuscated identifier (RFC 7239 section 6).
type node struct {
	addr  netip.Addr
	port  string // numeric, or empty
	ident string // "unknown" or "_..." when addr is not valid
}

func (n node) String() string {
	switch {
	case !n.addr.IsValid():
		return n.ident
	case n.port != "":
		return net.JoinHostPort(n.addr.String(), n.port)
	}
	return n.addr.String()
}

// parseNode parses a hop: "192.0.2.1", "192.0.2.1:80", "2001:db8::1",
// "[2001:db8::1]", "[2001:db8::1]:80", the obfuscated port forms
// ("[2001:db8::1]:_p"), "unknown" and "_hidden"; X-Forwarded-For items may
// be quoted.
func parseNode(s string) (node, bool) {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if strings.EqualFold(s, "unknown") {
		return node{ident: "unknown"}, true
	}
	if isObfuscated(s) {
		return node{ident: s}, true
	}
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return node{}, false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return node{}, false
			}
			port = port[1:]
		}
	} else if strings.Count(s, ":") == 1 {
		host, port, _ = strings.Cut(s, ":")
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return node{}, false
	}
	a = a.Unmap().WithZone("")
	switch {
	case port == "":
	case isObfuscated(port):
		port = "" // an obfuscated port says nothing
	default:
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return node{}, false
		}
	}
	return node{addr: a, port: port}, true
}

// isObfuscated reports whether s is an obfuscated identifier: "_"
// followed by letters, digits, ".", "_" or "-".
func isObfuscated(s string) bool {
	if len(s) < 2 || s[0] != '_' {
		return false
	}
	for _, c := range []byte(s[1:]) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// resolveClient applies ClientAddr to r: a request forwarded by a trusted
// proxy gets the client as its RemoteAddr (which the access and audit
// logs, the per-peer limits and gRPC's peer read) and the proxy in its
// context (ProxyFromContext); the forwarding headers of any other
// request are dropped, so that nothing downstream reads them.
func (t TrustedProxies) resolveClient(r *http.Request) *http.Request {
	client, proxy := t.ClientAddr(r.RemoteAddr, r.Header)
	if proxy == "" {
		if !t.trusts(peerAddr(r.RemoteAddr)) {
			r.Header.Del("Forwarded")
			r.Header.Del("X-Forwarded-For")
		}
		return r
	}
	r = r.WithContext(WithProxy(r.Context(), proxy))
	r.RemoteAddr = client
	return r
}
