package lu

import (
	"time"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// TestDelay implements OP_TEST_DELAY (Ganeti's LUTestDelay): it sleeps
// duration seconds on the master (on_master, default true) and then on the
// nodes of on_nodes (simulated: one more sleep), repeat times (0: once),
// with the node locks of those nodes unless no_locks (default true). The
// result is null.
type TestDelay struct{}

func delayParams(op proto.Message) (*rapiv2.OpTestDelay, error) {
	m, ok := op.(*rapiv2.OpTestDelay)
	if !ok {
		return nil, errs.Exec("Unexpected opcode %T", op)
	}
	return m, nil
}

func onMaster(m *rapiv2.OpTestDelay) bool { return m.OnMaster == nil || *m.OnMaster }

// Locks implements Executor.
func (TestDelay) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, err := delayParams(op)
	if err != nil {
		return nil, err
	}
	var uuids []string
	for _, name := range m.GetOnNodes() {
		uuid, err := lookupState(st, "node", name, "uuid")
		if err != nil {
			return nil, err
		}
		uuids = append(uuids, uuid)
	}
	if onMaster(m) {
		uuid, err := lookupState(st, "node", st.Master(), "uuid")
		if err != nil {
			return nil, err
		}
		uuids = append(uuids, uuid)
	}
	if m.NoLocks == nil || *m.NoLocks {
		return nil, nil
	}
	locks := make([]opexec.Lock, len(uuids))
	for i, u := range uuids {
		locks[i] = opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Exclusive}
	}
	return locks, nil
}

// Run implements Runner: the sleeps.
func (TestDelay) Run(x *opexec.ExecContext, op proto.Message) error {
	m, err := delayParams(op)
	if err != nil {
		return err
	}
	if m.GetRepeat() == 0 {
		return delayOnce(x, m)
	}
	for i := int64(0); i < m.GetRepeat(); i++ {
		x.LogInfo("Test delay iteration %d/%d", i, m.GetRepeat()-1)
		if err := delayOnce(x, m); err != nil {
			return err
		}
	}
	return nil
}

func delayOnce(x *opexec.ExecContext, m *rapiv2.OpTestDelay) error {
	d := m.GetDuration()
	if onMaster(m) {
		if d < 0 {
			return errs.Exec("Error during master delay test")
		}
		if err := sleep(x, d); err != nil {
			return err
		}
	}
	if nodes := m.GetOnNodes(); len(nodes) > 0 {
		if d < 0 {
			return errs.Exec("Failure during rpc call to node %s: Invalid sleep duration", nodes[0])
		}
		return sleep(x, d)
	}
	return nil
}

func sleep(x *opexec.ExecContext, seconds float64) error {
	if seconds <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(seconds * float64(time.Second)))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-x.Context().Done():
		return x.Context().Err()
	}
}

// Exec implements Executor: nothing changes; the result is null.
func (TestDelay) Exec(*opexec.ExecContext, proto.Message) (any, error) { return nil, nil }
