package server

import (
	"io"
	"log/slog"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/upstream/luxi"
)

func TestChooseBackend(t *testing.T) {
	var sim backend.Backend = &luxi.Backend{} // any backend stands for the simulated one
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		upstream string
		want     string // "sim", "luxi" or "error"
	}{
		{"", "sim"},
		{"unix:///var/run/ganeti/socket/ganeti-query", "luxi"},
		{"unix://relative/socket", "error"},
		{"unix://", "error"},
		{"ftp://x", "error"},
		{"::", "error"},
	} {
		be, err := chooseBackend(tc.upstream, sim, log)
		got := "error"
		switch {
		case err != nil:
		case be == sim:
			got = "sim"
		default:
			if _, ok := be.(*luxi.Backend); ok {
				got = "luxi"
			}
		}
		if got != tc.want {
			t.Errorf("chooseBackend(%q) = %s (%v), want %s", tc.upstream, got, err, tc.want)
		}
	}
}
