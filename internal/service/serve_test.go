package service_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/service"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// goldenEngine opens the golden cluster in memory with a job engine (not
// started) whose executors are execs (nil: the default ones), stopped when
// the test ends.
func goldenEngine(tb testing.TB, execs map[string]opexec.Executor) (*cluster.Model, *jobs.Engine) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(tb), "testdata", "golden-cluster.json"))
	if err != nil {
		tb.Fatal(err)
	}
	seed, err := cluster.ParseFile(data)
	if err != nil {
		tb.Fatal(err)
	}
	model, err := cluster.Open(memstore.New(), seed, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if execs == nil {
		execs = lu.DefaultExecutors()
	}
	eng, err := jobs.New(jobs.Config{Model: model, Logger: quiet, EncodeOp: service.LegacyOpValue, Executors: execs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	})
	return model, eng
}
