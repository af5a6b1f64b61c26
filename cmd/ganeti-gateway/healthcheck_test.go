package main

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer healthy.Close()
	unhealthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	}))
	defer unhealthy.Close()
	_, healthyPort, _ := net.SplitHostPort(healthy.Listener.Addr().String())

	// A port nothing listens on: a listener's, closed.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := lis.Addr().String()
	lis.Close()

	tests := []struct {
		name    string
		args    []string
		env     string // GANETI_GATEWAY_ADMIN_LISTEN
		wantErr string // "" for success
	}{
		{name: "healthy", args: []string{"--admin-listen", healthy.Listener.Addr().String()}},
		{name: "from the environment", env: healthy.Listener.Addr().String()},
		{name: "bare port is loopback", args: []string{"--admin-listen", healthyPort}},
		{name: "unspecified host is loopback", args: []string{"--admin-listen", "0.0.0.0:" + healthyPort}},
		{name: "unhealthy", args: []string{"--admin-listen", unhealthy.Listener.Addr().String()}, wantErr: "503"},
		{name: "nothing listens", args: []string{"--admin-listen", closedAddr}, wantErr: "connect"},
		{name: "no admin listener", wantErr: "no admin listener"},
		{name: "bad address", args: []string{"--admin-listen", "127.0.0.1:nope"}, wantErr: "bad port"},
		{name: "stray argument", args: []string{"--admin-listen", healthyPort, "extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envName("admin-listen"), tt.env)
			err := dispatch(append([]string{"healthcheck"}, tt.args...), stdio{in: strings.NewReader(""), out: io.Discard, err: io.Discard})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("healthcheck: %v, want success", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("healthcheck succeeded, want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("healthcheck: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
