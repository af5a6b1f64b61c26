package lu

import (
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// todo marks an executor not yet in the LU phases: its combined Exec runs
// inside the transaction, after the engine's generic plan phase (which
// runs an external iallocator outside it).
const todo = "not yet split into Check and Apply"

// notPhased are the executors that do not implement opexec.Phased, and
// why. The list only shrinks: an executor that becomes Phased must leave
// it.
var notPhased = map[string]string{
	"OP_BACKUP_EXPORT":             "remote mode transfers disks over the network: Runner (Run, then a recording Exec)",
	"OP_BACKUP_PREPARE":            "remote mode makes a key pair kept by the Remote, outside the configuration",
	"OP_TEST_DELAY":                "a Runner: the sleep is its Run phase; Exec changes nothing",
	"OP_CLUSTER_REDIST_CONF":       todo,
	"OP_CLUSTER_SET_PARAMS":        todo,
	"OP_GROUP_ASSIGN_NODES":        todo,
	"OP_GROUP_SET_PARAMS":          todo,
	"OP_INSTANCE_ACTIVATE_DISKS":   todo,
	"OP_INSTANCE_DEACTIVATE_DISKS": todo,
	"OP_INSTANCE_FAILOVER":         todo,
	"OP_INSTANCE_GROW_DISK":        todo,
	"OP_INSTANCE_MIGRATE":          todo,
	"OP_INSTANCE_MULTI_ALLOC":      todo,
	"OP_INSTANCE_QUERY_DATA":       todo,
	"OP_INSTANCE_REBOOT":           todo,
	"OP_INSTANCE_RECREATE_DISKS":   todo,
	"OP_INSTANCE_REINSTALL":        todo,
	"OP_INSTANCE_REMOVE":           todo,
	"OP_INSTANCE_RENAME":           todo,
	"OP_INSTANCE_REPLACE_DISKS":    todo,
	"OP_INSTANCE_SET_PARAMS":       todo,
	"OP_INSTANCE_SHUTDOWN":         todo,
	"OP_INSTANCE_STARTUP":          todo,
	"OP_NETWORK_ADD":               todo,
	"OP_NETWORK_CONNECT":           todo,
	"OP_NETWORK_DISCONNECT":        todo,
	"OP_NETWORK_REMOVE":            todo,
	"OP_NETWORK_SET_PARAMS":        todo,
	"OP_NODE_EVACUATE":             todo,
	"OP_NODE_MIGRATE":              todo,
	"OP_NODE_MODIFY_STORAGE":       todo,
	"OP_NODE_POWERCYCLE":           todo,
	"OP_NODE_QUERY_STORAGE":        todo,
	"OP_OS_DIAGNOSE":               todo,
	"OP_REPAIR_NODE_STORAGE":       todo,
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
