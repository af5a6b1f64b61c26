package opexec

import (
	"encoding/json"
)

// AllocPlan is what the plan phase of an opcode that may run an external
// iallocator leaves for its apply phase: the outcome of every allocator
// request the plan phase made (the job engine's plan.go).
type AllocPlan struct {
	planning bool // recording (plan phase), else replaying
	answers  []allocAnswer
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
