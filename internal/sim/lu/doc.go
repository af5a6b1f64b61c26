// Package lu holds the logical units of the simulated cluster: one executor
// per opcode (Ganeti's LU* classes), the allocators (built-in and the
// IAllocator protocol spoken to hail) and remote import/export. Each
// executor implements the contract of internal/sim/opexec; the job engine
// (internal/sim/jobs) runs them and neither package imports the other. The
// composition root hands DefaultExecutors to the engine.
package lu
