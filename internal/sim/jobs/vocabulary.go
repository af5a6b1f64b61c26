package jobs

import "github.com/ganeti-gateway/ganeti-gateway/internal/backend"

// The job vocabulary is the backend's (internal/backend); the engine uses
// it under its own names.
type (
	Job           = backend.Job
	Timestamp     = backend.Timestamp
	LogEntry      = backend.LogEntry
	SubmitOptions = backend.SubmitOptions
	Idempotency   = backend.Idempotency
	Origin        = backend.Origin
)

// Job and opcode statuses.
const (
	StatusQueued    = backend.StatusQueued
	StatusWaiting   = backend.StatusWaiting
	StatusCanceling = backend.StatusCanceling
	StatusRunning   = backend.StatusRunning
	StatusCanceled  = backend.StatusCanceled
	StatusSuccess   = backend.StatusSuccess
	StatusError     = backend.StatusError
)

var (
	// Finalized reports whether a job or opcode status is final.
	Finalized = backend.Finalized
	// JobStatus derives a job's status from its opcodes' statuses.
	JobStatus = backend.JobStatus
	// TimestampOf converts a time.
	TimestampOf = backend.TimestampOf
	// WithOrigin returns ctx carrying o, for Submit.
	WithOrigin  = backend.WithOrigin
	originFrom  = backend.OriginFrom
	decodeValue = backend.DecodeValue
	// OpID returns the OP_ID of the opcode in op.
	OpID       = backend.OpID
	opMember   = backend.OpMember
	opcodeInfo = backend.OpcodeInfo
	// NotFound is Ganeti's error for an unknown job id.
	NotFound = backend.JobNotFound
)
