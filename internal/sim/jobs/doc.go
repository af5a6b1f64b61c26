// Package jobs is the job engine of ganeti-gateway: Ganeti's job queue
// (jqueue) and lock manager for the simulated cluster.
//
// A job is a list of opcodes (rapiv2.OpCode). Submit validates it, gives it
// the next job id and persists it in the store before it returns the id
// (concurrent submissions share one store transaction: group commit). The
// job is then queued; a pool of workers runs queued jobs by priority (lower
// first, then by id), one opcode at a time:
//
//  1. its dependencies ("depends": [[job_id, [status, ...]], ...]) are
//     waited for (status "waiting"), as Ganeti's _JobDependencyManager does;
//  2. its executor (Config.Executors, by OP_ID; the logical units of
//     internal/sim/lu, behind the contract internal/sim/opexec) names the
//     locks it needs;
//     the engine adds the Big Ganeti Lock in shared mode and acquires them
//     all at once (status "waiting" while another job holds a conflicting
//     lock, without blocking a worker);
//  3. the opcode runs (status "running"): the optional Runner phase (e.g.
//     the sleep of OP_TEST_DELAY) outside any transaction; then, outside
//     any transaction too, the Check phase of an executor in Ganeti's
//     logical-unit shape (opexec.Phased: checks and planning on a
//     read-only snapshot, the allocator included), or for the others the
//     generic plan phase of an opcode that may run an external iallocator
//     (plan.go); then Apply (or Exec) inside
//     one cluster.Model.Update that applies the opcode's effect to the
//     configuration and writes the job record with the opcode's new status
//     and result, atomically. Opcodes ready at the same time share one
//     Update (a failure in such a batch re-runs its opcodes one by one, so a
//     failed opcode never commits anything);
//  4. the locks are released.
//
// Statuses, results, logs and timestamps follow Ganeti 3.0.2 (see
// ../../../shared/spec/errors.md §6): the job status is derived from the
// opcode statuses; a failed opcode's result is [class, [message, code]] and
// the opcodes after it fail with ["OpExecError", ["Preceding opcode
// failed"]].
//
// # Locks
//
// Lock names and their order are those of Ganeti 3.0's lock manager
// (src/Ganeti/Locking/Locks.hs): cluster ("cluster/BGL"), instance
// ("instance/<name>"), node group ("nodegroup/<uuid>"), node
// ("node/<uuid>"), node resources ("node-res/<uuid>"), network
// ("network/<uuid>"). An opcode acquires all its locks at once, atomically,
// so no job ever holds a lock while waiting for another: deadlock is
// impossible. Requests are granted in (priority, arrival) order: a request
// that conflicts with an earlier pending one waits behind it, so exclusive
// requests are not starved by shared ones. The "lock" query resource lists
// the locks that are held or wanted (name, mode, owner as job ids in JSON
// strings, pending as [[mode, [owner]], ...]), as Ganeti's Query/Locks.hs.
//
// # Crash safety
//
// Every state change of a job is written to the store (bucket "jobs"); the
// change to "running" is durable before the opcode starts. On New, jobs
// found "queued" or "waiting" are queued again (a waiting opcode goes back
// to "queued"); a job found "running" or "canceling" was interrupted by an
// unclean shutdown: as Ganeti's JobQueue does on master start, its
// unfinished opcodes end with status "error" and result ["OpExecError",
// ["Unclean master daemon shutdown"]]. Since an opcode's effect and its
// "success" commit together, an interrupted opcode changed nothing.
//
// # What clients see, and a store that refuses a commit
//
// A job's working state runs ahead of the store while a write is pending;
// clients never see it. Get, List, the "job" query, WaitForChange and Watch
// return the state as last committed, published by the committer after the
// transaction (dependencies, too, count a job's status once committed).
// When the store refuses a commit (store.ErrCommit: a full disk, an I/O or
// fsync error), the engine stops at once, as etcd does on a failed WAL
// write: it takes no submission (503 "Job queue is unavailable"), runs no
// opcode, writes nothing more, and Err reports it (health goes NOT_SERVING).
// Jobs keep showing what was committed; a restart, once the store can
// write, reads exactly that and carries on as after a crash. The outcome of
// the refused commit itself is unknown (it may have reached the disk): a
// submission answered 503 may still exist after the restart, as with
// Ganeti's queue; an acknowledged one is never lost.
//
// # Idempotent submissions
//
// A submission may carry an idempotency key (SubmitOptions.Idempotency:
// a scope such as the user, the client's key and the request's
// fingerprint). The key is written to the bucket "idempotency" in the same
// transaction as the job's first record, so a crash never leaves one
// without the other. Within Config.IdempotencyTTL a submission with the
// same scope and key gets the first job's id back and creates nothing, or
// an errs.ClassConflict error when its fingerprint differs; submissions of
// one key are serialized while one is being decided. Expired keys are
// removed on New and periodically (idempotency.go). A submission answered
// 503 by a store failure can thus be retried with its key after the
// restart: it gets the job if the refused commit reached the disk, or
// creates it.
//
// # Queue size
//
// Config.QueueSize is Ganeti's JOB_QUEUE_SIZE_HARD_LIMIT (5000): with that
// many jobs in the queue (archived ones excepted), submissions fail with
// Ganeti's RAPI answer, 503 "Job queue is full, needs archiving". From the
// soft limit (80%) on, finished jobs are archived early, oldest first (a
// to-do of Ganeti's queue), so only unfinished jobs fill it.
//
// # Archive
//
// Finished jobs older than Config.ArchiveAfter move to the bucket
// "jobs-archive": Get still finds them, List and the "job" query do not
// (as Ganeti's /2/jobs). Archived jobs that ended more than
// Config.ArchiveRetention ago (21 days, as Ganeti's ganeti-cleaner) are
// removed by the leader's engine, when it starts and periodically
// (retention.go); they are then unknown, as in Ganeti.
package jobs
