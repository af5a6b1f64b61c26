package jobs

import (
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// redactOps returns the opcodes as a job snapshot shows them: every
// private parameter (osparams_private, osparams_secret,
// osparams_private_cluster, and those keys inside free-form values such as
// OP_INSTANCE_MULTI_ALLOC's instances) replaced by "<redacted>"
// (legacyjson.Redact). Every read of a job's opcodes goes through a
// snapshot (GetJob, ListJobs, WatchJob, WaitJobChange and the wait body,
// the "ops" field of the job query resource), so none shows a secret,
// whatever the surface; the executors run on the engine's own opcodes,
// which keep the values. Opcodes without private values are shared.
func redactOps(ops []*rapiv2.OpCode) []*rapiv2.OpCode {
	out := make([]*rapiv2.OpCode, len(ops))
	for i, op := range ops {
		out[i] = op
		if r, changed := legacyjson.Redact(op); changed {
			if rop, ok := r.(*rapiv2.OpCode); ok {
				out[i] = rop
			}
		}
	}
	return out
}
