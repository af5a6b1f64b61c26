package server

import (
	"fmt"
	"log/slog"
	"net/url"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/upstream/luxi"
)

// chooseBackend is the backend of the --upstream setting: the simulated
// one (sim) when empty, luxi for unix://PATH.
func chooseBackend(upstream string, sim backend.Backend, log *slog.Logger) (backend.Backend, error) {
	if upstream == "" {
		return sim, nil
	}
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("--upstream: %w", err)
	}
	switch u.Scheme {
	case "unix":
		be, err := luxiBackend(u)
		if err == nil {
			log.Info("fronting a real cluster over luxi", "socket", u.Path)
		}
		return be, err
	}
	return nil, fmt.Errorf("--upstream: unsupported scheme %q (want unix://)", u.Scheme)
}

// luxiBackend is the luxi backend of unix:///path/to/socket.
func luxiBackend(u *url.URL) (backend.Backend, error) {
	if u.Host != "" || u.Path == "" {
		return nil, fmt.Errorf("--upstream: want unix:///absolute/path/to/socket, got host %q path %q", u.Host, u.Path)
	}
	return luxi.New(luxi.Config{Socket: u.Path})
}
