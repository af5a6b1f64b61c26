package telemetry

import "go.opentelemetry.io/otel/attribute"

// The attribute keys of the project's spans and metrics: rapi.* for the
// request, ganeti.* for the jobs, opcodes and objects they act on.
const (
	AttrJobID     = attribute.Key("ganeti.job.id")
	AttrJobStatus = attribute.Key("ganeti.job.status")
	AttrOpcode    = attribute.Key("ganeti.opcode")
	AttrOpIndex   = attribute.Key("ganeti.opcode.index")
	AttrOpStatus  = attribute.Key("ganeti.opcode.status")
	AttrSummary   = attribute.Key("ganeti.job.summary")
	AttrErrClass  = attribute.Key("ganeti.error.class")
	AttrErrCode   = attribute.Key("ganeti.error.code")
	AttrInstance  = attribute.Key("ganeti.instance")
	AttrNode      = attribute.Key("ganeti.node")
	AttrGroup     = attribute.Key("ganeti.group")
	AttrNetwork   = attribute.Key("ganeti.network")
	AttrUser      = attribute.Key("rapi.user")
	AttrRoute     = attribute.Key("rapi.route")
	AttrRPC       = attribute.Key("rpc.method")
	AttrLocks     = attribute.Key("ganeti.locks")
	AttrBlockedOn = attribute.Key("ganeti.lock.blocked_on")
	AttrAllocator = attribute.Key("ganeti.iallocator")
	// AttrCluster is the cluster a request is for, when the gateway fronts
	// several (--clusters).
	AttrCluster = attribute.Key("ganeti.cluster")
	// AttrReplayed marks a submission answered from its idempotency key.
	AttrReplayed = attribute.Key("ganeti.job.idempotent_replay")
)
