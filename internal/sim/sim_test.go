package sim_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/deploy"
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend/backendtest"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// TestContract runs the backend contract suite against the simulated
// backend, on the golden cluster (Ganeti 3.0.2's test cluster) and on the
// demo cluster a server seeds by default.
func TestContract(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), "testdata", "golden-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		file []byte
	}{
		{"golden", golden},
		{"demo", deploy.DemoCluster},
	} {
		t.Run(c.name, func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backendtest.Harness {
				return backendtest.Harness{Backend: newSim(t, c.file)}
			})
		})
	}
}

// encodeOp is the legacy JSON value of an opcode, as the server wires it.
func encodeOp(op *rapiv2.OpCode) (any, error) { return legacyjson.ToValue(op) }

// newSim opens a cluster file in memory behind a started job engine,
// stopped when the test ends.
func newSim(t *testing.T, file []byte) *sim.Backend {
	t.Helper()
	seed, err := cluster.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	model, err := cluster.Open(memstore.New(), seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := jobs.New(jobs.Config{Model: model, EncodeOp: encodeOp, Executors: lu.DefaultExecutors(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	eng.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Stop(ctx); err != nil {
			t.Errorf("stopping the engine: %v", err)
		}
	})
	return sim.New(model, eng)
}
