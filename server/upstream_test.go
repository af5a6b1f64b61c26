package server

import "testing"

// TestUpstreamTransport: the --upstream addresses pick RAPI or luxi by
// their scheme; anything else is refused at start.
func TestUpstreamTransport(t *testing.T) {
	for _, tc := range []struct {
		addrs      []string
		transport  string // "" with an error
		wantSocket string
	}{
		{[]string{"https://node1.example.com:5080"}, transportRAPI, ""},
		{[]string{"https://node1.example.com:5080", "https://node2.example.com:5080"}, transportRAPI, ""},
		{[]string{"unix:///var/run/ganeti/socket/ganeti-query"}, transportLUXI, "/var/run/ganeti/socket/ganeti-query"},
		{[]string{"unix://relative/socket"}, "", ""},
		{[]string{"unix://"}, "", ""},
		{[]string{"unix:///a", "https://b:5080"}, "", ""},
		{[]string{"https://b:5080", "unix:///a"}, "", ""},
		{[]string{"ftp://x"}, "", ""},
		{[]string{"::"}, "", ""},
	} {
		tr, sock, err := upstreamTransport(tc.addrs)
		if tr != tc.transport || sock != tc.wantSocket || (err == nil) != (tc.transport != "") {
			t.Errorf("upstreamTransport(%q) = %q, %q, %v; want %q, %q", tc.addrs, tr, sock, err, tc.transport, tc.wantSocket)
		}
	}
}
