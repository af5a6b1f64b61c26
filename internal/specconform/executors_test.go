package specconform

import (
	"sort"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
)

// TestEveryRAPIOpcodeHasAnExecutor checks that the job engine runs every
// opcode a RAPI route submits (spec/opcodes.json rapi_reachable), plus
// OP_TEST_DELAY.
func TestEveryRAPIOpcodeHasAnExecutor(t *testing.T) {
	var spec struct {
		Reachable []string `json:"rapi_reachable"`
	}
	readJSON(t, "opcodes.json", &spec)
	execs := lu.DefaultExecutors()
	var missing []string
	for _, id := range append(spec.Reachable, "OP_TEST_DELAY") {
		if execs[id] == nil {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(spec.Reachable) != 41 {
		t.Errorf("spec lists %d RAPI-reachable opcodes, expected 41", len(spec.Reachable))
	}
	if len(missing) > 0 {
		t.Errorf("no executor for %v", missing)
	}
}
