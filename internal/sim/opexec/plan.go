package opexec

import (
	"encoding/json"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
)

// AllocPlan is what the plan phase of an opcode that may run an external
// iallocator leaves for its apply phase: the outcome of every allocator
// request the plan phase made (the job engine's plan.go).
type AllocPlan struct {
	planning bool // recording (plan phase), else replaying
	answers  []allocAnswer
	ids      []string // the new identifiers of the plan phase (ID)
	next     int      // the next of ids to replay
}

// NewAllocPlan returns a plan that records (the plan phase); Done turns it
// into one that replays (the apply phase).
func NewAllocPlan() *AllocPlan { return &AllocPlan{planning: true} }

// Done ends the plan phase: from now on the plan replays.
func (p *AllocPlan) Done() { p.planning = false }

// allocAnswer is the outcome of one allocator request.
type allocAnswer struct {
	name    string
	request []byte // the JSON of the "request" object
	res     json.RawMessage
	err     error
}

func planKey(request map[string]any) []byte {
	b, err := json.Marshal(request)
	if err != nil {
		return nil
	}
	return b
}

// IsPlanning tells whether this is the plan phase.
func (p *AllocPlan) IsPlanning() bool { return p != nil && p.planning }

// Record keeps an outcome in the plan phase (nil plan: no plan phase).
func (p *AllocPlan) Record(name string, request map[string]any, res json.RawMessage, err error) {
	if p == nil || !p.planning {
		return
	}
	key := planKey(request)
	if key == nil {
		return
	}
	p.answers = append(p.answers, allocAnswer{name: name, request: key, res: res, err: err})
}

// Replay returns the planned outcome of a request in the apply phase.
func (p *AllocPlan) Replay(name string, request map[string]any) (json.RawMessage, error, bool) {
	if p == nil || p.planning || len(p.answers) == 0 {
		return nil, nil, false
	}
	key := planKey(request)
	for _, a := range p.answers {
		if a.name == name && key != nil && string(a.request) == string(key) {
			return a.res, a.err, true
		}
	}
	return nil, nil, false
}

// IsReplaying tells whether this is the apply phase of a plan: an
// allocator request it does not hold must not run the allocator there.
func (p *AllocPlan) IsReplaying() bool { return p != nil && !p.planning }

// Rewound returns the plan for one run of an apply phase: the same
// answers and identifiers, replayed from the first (the store may run the
// apply phase more than once; each run replays the same identifiers).
func (p *AllocPlan) Rewound() *AllocPlan {
	if p == nil {
		return nil
	}
	cp := *p
	cp.next = 0
	return &cp
}

// ID returns a new identifier made by gen in the plan phase, which the
// plan records; the apply phase gets the recorded ones in the same order
// (gen only when it asks for more than were recorded). Without a plan it
// is gen's.
func (p *AllocPlan) ID(gen func() string) string {
	switch {
	case p == nil:
		return gen()
	case p.planning:
		id := gen()
		p.ids = append(p.ids, id)
		return id
	case p.next < len(p.ids):
		id := p.ids[p.next]
		p.next++
		return id
	default:
		p.next++
		return gen()
	}
}

// NewUUID returns the UUID of a new object: a random one, recorded by the
// opcode's plan phase and replayed by its apply phase (AllocPlan.ID), so
// that every run of Apply makes the same objects.
func (x *ExecContext) NewUUID() string { return x.Env.Plan.ID(cluster.NewUUID) }
