package jobs

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// Parameters written back.
//
// Ganeti's logical units assign opcode parameters while they run
// (self.op.instance_uuid in ExpandNames, the cluster's default iallocator,
// the upgraded beparams of a new instance...), and the job record shows the
// opcode as they left it, also when they failed afterwards. Executors do the
// same with ExecContext.SetParam; the engine writes the debug level when an
// opcode starts and the uuids of the instance or node an opcode names once
// its locks are computed (expandNames). The opcode message an executor gets
// does not change: the writes go to the job's copy, committed with the
// opcode's outcome.

// withParams returns a copy of op with the writes applied, and its binary
// form. A write the opcode's codec refuses is an error (an executor's
// defect): nothing is applied then.
func withParams(op *rapiv2.OpCode, writes []opexec.ParamWrite) (*rapiv2.OpCode, []byte, error) {
	out := proto.Clone(op).(*rapiv2.OpCode)
	msg := opMember(out)
	if msg == nil {
		return nil, nil, fmt.Errorf("jobs: write-back to an empty opcode")
	}
	m := msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	for _, w := range writes {
		fd := fields.ByJSONName(w.Name)
		if fd == nil {
			return nil, nil, fmt.Errorf("jobs: %s has no parameter %q", opcodeInfo(msg).GetId(), w.Name)
		}
		if w.Value == nil {
			m.Clear(fd)
			continue
		}
		tmp := m.New()
		if err := legacyjson.FromValue(tmp.Interface(), legacyjson.Object{{Key: w.Name, Value: w.Value}}); err != nil {
			return nil, nil, fmt.Errorf("jobs: %s.%s: %w", opcodeInfo(msg).GetId(), w.Name, err)
		}
		if !tmp.Has(fd) {
			m.Clear(fd) // an empty list or map
			continue
		}
		m.Set(fd, tmp.Get(fd))
	}
	b, err := proto.Marshal(out)
	if err != nil {
		return nil, nil, err
	}
	return out, b, nil
}

// setOp replaces opcode i of j, and its summary, which Ganeti computes
// from the opcode as stored (mu held; the slices are copied on write:
// snapshots and batches share them).
func (j *job) setOp(i int, op *rapiv2.OpCode, b []byte) {
	j.ops = slices.Clone(j.ops)
	j.ops[i] = op
	j.msgs = slices.Clone(j.msgs)
	j.msgs[i] = opMember(op)
	j.rec.setOp(i, j.msgs[i], b)
}

// setOp replaces the binary opcode i of r and its summary (the slices are
// copied on write).
func (r *record) setOp(i int, msg proto.Message, b []byte) {
	r.Ops = slices.Clone(r.Ops)
	r.Ops[i] = b
	r.opsChanged = true
	r.Summary = slices.Clone(r.Summary)
	r.Summary[i] = summaryOf(msg)
}

// writeParams applies writes to opcode i of j's working state (mu held).
func (e *Engine) writeParams(j *job, i int, writes []opexec.ParamWrite) {
	if len(writes) == 0 {
		return
	}
	op, b, err := withParams(j.ops[i], writes)
	if err != nil {
		e.log.Error("writing opcode parameters back failed", "job", j.rec.ID, "opcode", i, "err", err)
		return
	}
	j.setOp(i, op, b)
}

// namedObjects are the parameter pairs through which an opcode names an
// instance or a node: Ganeti's ExpandNames resolves the name and writes
// back the object's uuid and full name (_ExpandAndLockInstance,
// ExpandNodeUuidAndName) before taking any lock.
var namedObjects = []struct{ resource, name, uuid string }{
	{"instance", "instance_name", "instance_uuid"},
	{"node", "node_name", "node_uuid"},
}

// expandNames returns the writes of Ganeti's ExpandNames for msg: the uuid
// (and full name) of the instance or node it names, when that exists in st.
func expandNames(msg proto.Message, st *cluster.State) []opexec.ParamWrite {
	m := msg.ProtoReflect()
	fields := m.Descriptor().Fields()
	var out []opexec.ParamWrite
	for _, o := range namedObjects {
		nfd, ufd := fields.ByJSONName(o.name), fields.ByJSONName(o.uuid)
		if nfd == nil || ufd == nil || nfd.Kind() != protoreflect.StringKind || ufd.Kind() != protoreflect.StringKind ||
			!m.Has(nfd) || m.Has(ufd) {
			continue
		}
		name := m.Get(nfd).String()
		cells, err := st.Get(o.resource, name, []string{"uuid", "name"})
		if err != nil || len(cells) != 2 {
			continue
		}
		uuid, _ := cells[0].Value.(string)
		full, _ := cells[1].Value.(string)
		if uuid == "" {
			continue
		}
		out = append(out, opexec.ParamWrite{Name: o.uuid, Value: uuid})
		if full != "" && full != name {
			out = append(out, opexec.ParamWrite{Name: o.name, Value: full})
		}
	}
	return out
}
