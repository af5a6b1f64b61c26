package backend

import "context"

// SubmitOptions are the options of a job submission besides its opcodes.
type SubmitOptions struct {
	// Priority, when set, is the priority of every opcode of the job
	// (Ganeti's -20..19), overriding their priority parameters.
	Priority *int
	// Idempotency, when set, makes the submission idempotent: a
	// submission with the same scope and key, within the backend's
	// retention, gets the first job's id back and creates nothing (same
	// fingerprint) or fails with an errs.ClassConflict error (another
	// fingerprint).
	Idempotency *Idempotency
}

// Idempotency is the idempotency key of a submission.
type Idempotency struct {
	// Scope is whose key it is (the user): the same key in two scopes
	// names two submissions.
	Scope string
	// Key is the client's idempotency key (not empty).
	Key string
	// Fingerprint identifies the request (e.g. its method and a hash of
	// its message): a key used again with another fingerprint is a
	// conflict.
	Fingerprint string
}

// Origin is who asked for a call and how: the backend records it with the
// jobs it creates (span attributes, Ganeti's reason trail upstream).
type Origin struct {
	// User is the authenticated user ("" when anonymous).
	User string
	// Route is the legacy route of the request, e.g. "PUT
	// /2/instances/{instance_name}/startup" ("" for gRPC calls).
	Route string
	// RPC is the gRPC method, e.g. /ganeti.rapi.v2.TagService/AddTags.
	RPC string
}

type originKey struct{}

// WithOrigin returns ctx carrying o.
func WithOrigin(ctx context.Context, o Origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// OriginFrom returns the origin ctx carries (zero when none).
func OriginFrom(ctx context.Context) Origin {
	o, _ := ctx.Value(originKey{}).(Origin)
	return o
}

type idempotencyKey struct{}

// WithIdempotency returns ctx carrying the idempotency key of the call,
// which the services pass on to the submission it makes.
func WithIdempotency(ctx context.Context, k *Idempotency) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, k)
}

// IdempotencyFrom returns the idempotency key ctx carries, or nil.
func IdempotencyFrom(ctx context.Context) *Idempotency {
	k, _ := ctx.Value(idempotencyKey{}).(*Idempotency)
	return k
}

type clusterKey struct{}

// WithCluster returns ctx carrying the name of the cluster a call is for
// (several clusters behind one gateway): the transport sets it, a backend
// that routes between clusters reads it. The services never look at it.
func WithCluster(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, clusterKey{}, name)
}

// ClusterFrom returns the cluster name ctx carries ("" when none: the
// default cluster).
func ClusterFrom(ctx context.Context) string {
	n, _ := ctx.Value(clusterKey{}).(string)
	return n
}
