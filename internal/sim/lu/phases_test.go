package lu

import (
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// notPhased are the executors that do not implement opexec.Phased, and
// why. The list only shrinks: an executor that becomes Phased must leave
// it.
var notPhased = map[string]string{
	"OP_BACKUP_EXPORT":  "remote mode transfers disks over the network: Runner (Run, then a recording Exec)",
	"OP_BACKUP_PREPARE": "remote mode makes a key pair kept by the Remote, outside the configuration",
	"OP_TEST_DELAY":     "a Runner: the sleep is its Run phase; Exec changes nothing",
}

// TestPhaseShape: every executor is in Ganeti's LU phases (opexec.Phased)
// or listed in notPhased with its reason.
func TestPhaseShape(t *testing.T) {
	execs := DefaultExecutors()
	for id, ex := range execs {
		_, phased := ex.(opexec.Phased)
		_, listed := notPhased[id]
		switch {
		case phased && listed:
			t.Errorf("%s is Phased: remove it from notPhased", id)
		case !phased && !listed:
			t.Errorf("%s (%T) is neither Phased nor listed in notPhased", id, ex)
		}
	}
	for id := range notPhased {
		if execs[id] == nil {
			t.Errorf("notPhased lists %s, which has no executor", id)
		}
	}
}
