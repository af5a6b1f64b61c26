package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v0.0.0-20260101000000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.time", Value: "2026-01-01T00:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	devel := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"}}
	for _, c := range []struct {
		name                  string
		version, commit, date string
		bi                    *debug.BuildInfo
		want                  Info
		line                  string
	}{
		{"stamped", "v1.2.0", "feedface", "2026-02-03T04:05:06Z", vcs,
			Info{Version: "v1.2.0", Commit: "feedface", Date: "2026-02-03T04:05:06Z", GoVersion: "go1.99"},
			"ganeti-gateway v1.2.0 (commit feedface, built 2026-02-03T04:05:06Z, go1.99 "},
		{"from the toolchain's record", "", "", "", vcs,
			Info{Version: "v0.0.0-20260101000000-0123456789ab+dirty", Commit: "0123456789abcdef", Date: "2026-01-01T00:00:00Z",
				DateIsCommit: true, Modified: true, GoVersion: "go1.99"},
			"ganeti-gateway v0.0.0-20260101000000-0123456789ab+dirty (commit 0123456789abcdef with uncommitted changes, committed 2026-01-01T00:00:00Z, go1.99 "},
		{"nothing recorded (-buildvcs=false)", "", "", "", devel,
			Info{Version: "devel", Commit: "unknown", Date: "unknown", GoVersion: "go1.99"},
			"ganeti-gateway devel (commit unknown, built unknown, go1.99 "},
		{"no build info", "", "", "", nil,
			Info{Version: "devel", Commit: "unknown", Date: "unknown"},
			"ganeti-gateway devel (commit unknown, built unknown, "},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := get(c.version, c.commit, c.date, func() (*debug.BuildInfo, bool) { return c.bi, c.bi != nil })
			if c.want.GoVersion == "" {
				c.want.GoVersion = got.GoVersion // the running toolchain's
			}
			c.want.Platform = got.Platform
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if s := got.String(); !strings.HasPrefix(s, c.line) || !strings.HasSuffix(s, got.Platform+")") {
				t.Errorf("String() = %q, want prefix %q", s, c.line)
			}
		})
	}
}
