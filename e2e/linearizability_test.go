package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The porcupine model of the job queue as clients of several replicas see
// it: job submissions (through any replica) and reads of a job's status by
// id (on any replica), each with its call and return time on the test
// process's one monotonic clock.
//
// The history is partitioned per job id: a job is absent, then every
// opcode of it goes from pending (queued, waiting) to running (running,
// canceling) to final (success, error, canceled), never back, and a final
// status never changes. A submission makes its job queued (or is a no-op
// when a read already saw it: the read was concurrent with it); a read
// that sees the job must see every opcode at least as far as the state,
// and moves the state there; a read that sees no job is legal only while
// the state is absent. So a replica answering absent, or an older status,
// after another read (or the submission) already returned something newer
// is a violation. Per job only opcode statuses are compared, not the job
// status: Ganeti derives it from the opcodes, and a job of several opcodes
// reads "queued" again between two of them.
//
// One more partition holds every submission: the ids are a linearizable
// counter, so a submission that begins after another returned gets a
// greater id. A submission whose outcome is unknown (an error, a timeout:
// the job may exist or not) returns at infinity with no id; it is in no job
// partition (no read names its job) and allows any step in this one. The
// acknowledged ids of a linearization increase if and only if they come in
// sorted order, so each acknowledged submission carries the id before its
// own in that order (Prev) and may only follow it: porcupine then finds
// the one order instead of trying the permutations of every window of
// concurrent submissions (which do not end with hundreds of them).

// linInput is an operation's input.
type linInput struct {
	Submit  bool
	Ops     int    // a submission's opcodes
	ID      int64  // a read: the job read
	Replica string // where the call went (for the visualization)
}

// linOutput is an operation's output.
type linOutput struct {
	ID       int64  // a submission: the job's id; 0 unknown (not acknowledged)
	Exists   bool   // a read: whether the job exists
	Status   string // a read: the job's status (for the visualization)
	OpStatus string // a read: the opcodes' statuses, comma-separated
}

// linState is the state of one partition: Job the opcode statuses of the
// partition's job ("" absent), or MaxID the greatest id given (the
// submissions' partition).
type linState struct {
	Job   string
	MaxID int64
}

// opStatusRank orders an opcode's statuses: pending, running, final.
func opStatusRank(s string) int {
	switch s {
	case "queued", "waiting":
		return 0
	case "running", "canceling":
		return 1
	}
	return 2
}

// progressed reports whether opcode statuses to may follow from.
func progressed(from, to string) bool {
	f, t := strings.Split(from, ","), strings.Split(to, ",")
	if len(f) != len(t) {
		return false
	}
	for i := range f {
		rf, rt := opStatusRank(f[i]), opStatusRank(t[i])
		if rt < rf || (rf == 2 && t[i] != f[i]) {
			return false
		}
	}
	return true
}

// idsPartition marks the copies of the submissions in the ids partition;
// Prev is the acknowledged id before the submission's in sorted order (0
// for the first).
type idsPartition struct {
	linInput
	Prev int64
}

var jobLinModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byJob := map[int64][]porcupine.Operation{}
		var ids []porcupine.Operation
		var given []int64
		for _, op := range history {
			if op.Input.(linInput).Submit && op.Output.(linOutput).ID != 0 {
				given = append(given, op.Output.(linOutput).ID)
			}
		}
		sort.Slice(given, func(i, j int) bool { return given[i] < given[j] })
		prev := map[int64]int64{} // of ids given twice, the second cannot follow: its id is not greater
		for i := len(given) - 1; i > 0; i-- {
			prev[given[i]] = given[i-1]
		}
		for _, op := range history {
			in, out := op.Input.(linInput), op.Output.(linOutput)
			if !in.Submit {
				byJob[in.ID] = append(byJob[in.ID], op)
				continue
			}
			c := op
			c.Input = idsPartition{in, prev[out.ID]}
			ids = append(ids, c)
			if out.ID != 0 {
				byJob[out.ID] = append(byJob[out.ID], op)
			}
		}
		keys := make([]int64, 0, len(byJob))
		for id := range byJob {
			keys = append(keys, id)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		parts := [][]porcupine.Operation{ids}
		for _, id := range keys {
			parts = append(parts, byJob[id])
		}
		return parts
	},
	Init: func() any { return linState{} },
	Step: func(state, input, output any) (bool, any) {
		st, out := state.(linState), output.(linOutput)
		switch in := input.(type) {
		case idsPartition:
			if out.ID == 0 {
				return true, st // unknown outcome: it may have taken an id we never see
			}
			if out.ID <= st.MaxID || in.Prev != st.MaxID {
				return false, st
			}
			return true, linState{MaxID: out.ID}
		case linInput:
			if in.Submit {
				if st.Job == "" {
					return true, linState{Job: strings.TrimSuffix(strings.Repeat("queued,", in.Ops), ",")}
				}
				return true, st // a concurrent read saw it first
			}
			if !out.Exists {
				return st.Job == "", st
			}
			if st.Job != "" && !progressed(st.Job, out.OpStatus) {
				return false, st
			}
			return true, linState{Job: out.OpStatus}
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		out := output.(linOutput)
		switch in := input.(type) {
		case idsPartition:
			if out.ID == 0 {
				return fmt.Sprintf("submit(%d ops) via %s -> unknown", in.Ops, in.Replica)
			}
			return fmt.Sprintf("submit(%d ops) via %s -> id %d", in.Ops, in.Replica, out.ID)
		case linInput:
			if in.Submit {
				return fmt.Sprintf("submit(%d ops) via %s -> job %d", in.Ops, in.Replica, out.ID)
			}
			if !out.Exists {
				return fmt.Sprintf("read job %d on %s -> absent", in.ID, in.Replica)
			}
			return fmt.Sprintf("read job %d on %s -> %s [%s]", in.ID, in.Replica, out.Status, out.OpStatus)
		}
		return fmt.Sprintf("%v -> %v", input, output)
	},
	DescribeState: func(state any) string {
		st := state.(linState)
		switch {
		case st.MaxID != 0:
			return fmt.Sprintf("last id %d", st.MaxID)
		case st.Job == "":
			return "absent"
		}
		return "[" + st.Job + "]"
	},
}

// linHistory records operations on one monotonic clock (time.Since of
// its start).
type linHistory struct {
	t0  time.Time
	mu  sync.Mutex
	ops []porcupine.Operation
}

func newLinHistory() *linHistory { return &linHistory{t0: time.Now()} }

// now is the clock, in nanoseconds since the start.
func (h *linHistory) now() int64 { return int64(time.Since(h.t0)) }

// submitted records a submission of ops opcodes through replica by client;
// id 0: not acknowledged, its outcome unknown (it never returns).
func (h *linHistory) submitted(client int, replica string, ops int, call, ret, id int64) {
	if id == 0 {
		ret = math.MaxInt64
	}
	h.add(porcupine.Operation{ClientId: client, Input: linInput{Submit: true, Ops: ops, Replica: replica},
		Call: call, Output: linOutput{ID: id}, Return: ret})
}

// read records a read of job id on replica that answered out (a read
// without an answer tells nothing and is not recorded).
func (h *linHistory) read(client int, replica string, id int64, call, ret int64, out linOutput) {
	h.add(porcupine.Operation{ClientId: client, Input: linInput{ID: id, Replica: replica},
		Call: call, Output: out, Return: ret})
}

func (h *linHistory) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// check runs porcupine on the history; on a violation (or a check that
// does not end within the timeout) it writes the visualization to a
// directory it names, which is kept.
func (h *linHistory) check(t *testing.T, timeout time.Duration) {
	t.Helper()
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	submits, unknown, jobs := 0, 0, map[int64]bool{}
	for _, op := range ops {
		if in := op.Input.(linInput); in.Submit {
			submits++
			if op.Output.(linOutput).ID == 0 {
				unknown++
			}
		} else {
			jobs[in.ID] = true
		}
	}
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(jobLinModel, ops, timeout)
	t.Logf("porcupine: %d operations (%d submissions, %d of them unknown; %d reads of %d jobs): %s in %v",
		len(ops), submits, unknown, len(ops)-submits, len(jobs), res, time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok {
		return
	}
	dir, err := os.MkdirTemp("", "porcupine-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "history.html")
	if err := porcupine.VisualizePath(jobLinModel, info, path); err != nil {
		t.Errorf("visualization: %v", err)
	}
	t.Errorf("the history of submissions and reads is not linearizable (%s); open %s", res, path)
}

// TestLinearizabilityModel checks that the model tells a linearizable
// history of submissions and reads from one that is not: a replica that
// reports a job absent after its submission returned, or an older status
// after another read returned a newer one, or a different final status;
// ids that do not grow in real-time order.
func TestLinearizabilityModel(t *testing.T) {
	type op struct {
		call, ret int64
		in        linInput
		out       linOutput
	}
	submit := func(call, ret int64, ops int, id int64) op {
		if id == 0 {
			ret = math.MaxInt64
		}
		return op{call, ret, linInput{Submit: true, Ops: ops, Replica: "gw0"}, linOutput{ID: id}}
	}
	read := func(call, ret int64, replica string, id int64, opstatus string) op {
		out := linOutput{Exists: opstatus != "", OpStatus: opstatus}
		if out.Exists {
			out.Status = "job"
		}
		return op{call, ret, linInput{ID: id, Replica: replica}, out}
	}
	valid := []op{
		submit(0, 10, 2, 7),
		read(11, 20, "gw1", 7, "queued,queued"),
		read(12, 30, "gw2", 7, "running,queued"),
		read(15, 25, "gw0", 7, "waiting,queued"), // concurrent with the one before: either order
		read(31, 40, "gw1", 7, "success,queued"), // between two opcodes
		read(41, 50, "gw2", 7, "success,error"),
		read(45, 60, "gw0", 7, "success,running"), // concurrent with the final read
		read(5, 9, "gw0", 8, ""),                  // before its submission returned
		submit(1, 12, 1, 8),
		read(6, 14, "gw1", 8, "queued"), // concurrent with the submission
		submit(13, 20, 1, 0),            // unknown outcome
		submit(21, 22, 1, 9),
		submit(23, 30, 1, 11),
		submit(24, 29, 1, 10), // concurrent with id 11
	}
	cases := []struct {
		name string
		ops  []op
		ok   bool
	}{
		{"valid", valid, true},
		{"absent after the submission returned", append(slices.Clone(valid), read(61, 62, "gw2", 7, "")), false},
		{"stale follower after success", append(slices.Clone(valid), read(61, 70, "gw2", 7, "success,queued")), false},
		{"status going back", []op{submit(0, 1, 1, 3), read(2, 3, "gw0", 3, "running"), read(4, 5, "gw1", 3, "queued")}, false},
		{"final status changing", []op{submit(0, 1, 1, 3), read(2, 3, "gw0", 3, "success"), read(4, 5, "gw1", 3, "error")}, false},
		{"wrong opcode count", []op{submit(0, 1, 2, 3), read(2, 3, "gw0", 3, "success")}, false},
		{"ids going back in real time", []op{submit(0, 1, 1, 5), submit(2, 3, 1, 4)}, false},
		{"the same id twice", []op{submit(0, 5, 1, 5), submit(1, 6, 1, 5)}, false},
		{"an unknown submission allows anything", []op{submit(0, 0, 1, 0), submit(2, 3, 1, 4), submit(1, 0, 1, 0)}, true},
	}
	for _, c := range cases {
		h := &linHistory{}
		for i, o := range c.ops {
			h.add(porcupine.Operation{ClientId: i % 4, Input: o.in, Call: o.call, Output: o.out, Return: o.ret})
		}
		res, info := porcupine.CheckOperationsVerbose(jobLinModel, h.ops, 10*time.Second)
		if got := res == porcupine.Ok; got != c.ok || res == porcupine.Unknown {
			t.Errorf("%s: porcupine says %s", c.name, res)
		}
		if !c.ok { // the visualization of a violation renders
			if err := porcupine.VisualizePath(jobLinModel, info, filepath.Join(t.TempDir(), "history.html")); err != nil {
				t.Errorf("%s: visualization: %v", c.name, err)
			}
		}
	}
}
