package clusters

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Router is a backend in front of several clusters' backends: every call
// goes to the cluster its context names (backend.WithCluster), or to the
// default cluster when it names none. Job ids, filter rules and the rest
// are each cluster's own.
type Router struct {
	names    []string
	backends map[string]backend.Backend
	hosts    map[string]string // host name (and name) -> cluster
	def      string
}

var (
	_ backend.Backend              = (*Router)(nil)
	_ backend.UnsupportedExplainer = (*Router)(nil)
	_ backend.Versioned            = (*Router)(nil)
)

// NewRouter routes between the clusters of f, whose backends are given
// by name.
func NewRouter(f *File, backends map[string]backend.Backend) (*Router, error) {
	r := &Router{backends: map[string]backend.Backend{}, hosts: map[string]string{}, def: f.Default()}
	for _, e := range f.Clusters {
		b := backends[e.Name]
		if b == nil {
			return nil, fmt.Errorf("cluster %q has no backend", e.Name)
		}
		r.names = append(r.names, e.Name)
		r.backends[e.Name] = b
		r.hosts[e.Name] = e.Name
		for _, h := range e.Hosts {
			r.hosts[h] = e.Name
		}
	}
	return r, nil
}

// ClusterNames lists the clusters in the file's order.
func (r *Router) ClusterNames() []string { return r.names }

// Default is the default cluster ("" when none).
func (r *Router) Default() string { return r.def }

// Backend is the backend of a cluster (nil for an unknown one).
func (r *Router) Backend(name string) backend.Backend { return r.backends[name] }

// Resolve is the cluster a gRPC call names: the name itself, or the
// default cluster for "". false: no such cluster (or no default).
func (r *Router) Resolve(name string) (string, bool) {
	if name == "" {
		return r.def, r.def != ""
	}
	if _, ok := r.backends[name]; !ok {
		return "", false
	}
	return name, true
}

// ResolveHost is the cluster of a legacy request: the first of hosts (the
// Host header, then the TLS server name; a port and a trailing dot are
// ignored, case too) that is a cluster's name or host name, else the
// default cluster. false: none matches and there is no default.
func (r *Router) ResolveHost(hosts ...string) (string, bool) {
	for _, h := range hosts {
		if name, ok := r.hosts[normalHost(h)]; ok {
			return name, true
		}
	}
	return r.def, r.def != ""
}

// normalHost strips a port (and an IPv6 literal's brackets) and a
// trailing dot, in lower case.
func normalHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// UnknownCluster is the error of a call for a cluster the gateway does not
// front (or naming none without a default cluster): NOT_FOUND.
func UnknownCluster(name string) error {
	if name == "" {
		return errs.Prereq(errs.CodeNoEnt, "no cluster named and no default cluster: set the ganeti-cluster metadata (gRPC) or use a cluster's host name")
	}
	return errs.Prereq(errs.CodeNoEnt, "Cluster '%s' not known", name)
}

// pick is the backend of the call's cluster.
func (r *Router) pick(ctx context.Context) (backend.Backend, error) {
	want := backend.ClusterFrom(ctx)
	name, ok := r.Resolve(want)
	if !ok {
		return nil, UnknownCluster(want)
	}
	return r.backends[name], nil
}

// ClusterInfo implements backend.Reader.
func (r *Router) ClusterInfo(ctx context.Context) (map[string]any, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.ClusterInfo(ctx)
}

// Names implements backend.Reader.
func (r *Router) Names(ctx context.Context, resource string) ([]string, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.Names(ctx, resource)
}

// Get implements backend.Reader.
func (r *Router) Get(ctx context.Context, resource, name string, fields []string) ([]backend.Cell, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.Get(ctx, resource, name, fields)
}

// Query implements backend.Reader.
func (r *Router) Query(ctx context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.Query(ctx, resource, fields, filter, lim)
}

// QueryFields implements backend.Reader.
func (r *Router) QueryFields(ctx context.Context, resource string, fields []string) ([]backend.FieldDef, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.QueryFields(ctx, resource, fields)
}

// Tags implements backend.Reader.
func (r *Router) Tags(ctx context.Context, kind, name string) ([]string, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.Tags(ctx, kind, name)
}

// NodeRole implements backend.Reader.
func (r *Router) NodeRole(ctx context.Context, name string) (string, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return "", err
	}
	return b.NodeRole(ctx, name)
}

// InstanceConsole implements backend.Reader.
func (r *Router) InstanceConsole(ctx context.Context, name string) (map[string]any, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.InstanceConsole(ctx, name)
}

// OSNames implements backend.Reader.
func (r *Router) OSNames(ctx context.Context) ([]string, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.OSNames(ctx)
}

// Supports implements backend.JobQueue. It has no context: it reports
// whether any cluster runs the opcode, and Submit checks the call's
// cluster.
func (r *Router) Supports(opID string) bool {
	for _, n := range r.names {
		if r.backends[n].Supports(opID) {
			return true
		}
	}
	return false
}

// Unsupported implements backend.UnsupportedExplainer: the first cluster's
// explanation (no cluster runs the opcode).
func (r *Router) Unsupported(opID string) error {
	for _, n := range r.names {
		if !r.backends[n].Supports(opID) {
			return unsupported(r.backends[n], opID)
		}
	}
	return errs.NotImplemented("%s is not implemented yet", opID)
}

func unsupported(q backend.JobQueue, opID string) error {
	if e, ok := q.(backend.UnsupportedExplainer); ok {
		return e.Unsupported(opID)
	}
	return errs.NotImplemented("%s is not implemented yet", opID)
}

// Submit implements backend.JobQueue: the opcodes the call's cluster does
// not run are refused before anything is submitted.
func (r *Router) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return 0, err
	}
	for _, op := range ops {
		if id := backend.OpID(op); !b.Supports(id) {
			return 0, unsupported(b, id)
		}
	}
	return b.Submit(ctx, ops, opt)
}

// Job implements backend.JobQueue.
func (r *Router) Job(ctx context.Context, id int64) (*backend.Job, bool, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, false, err
	}
	return b.Job(ctx, id)
}

// JobIDs implements backend.JobQueue.
func (r *Router) JobIDs(ctx context.Context) ([]int64, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.JobIDs(ctx)
}

// Jobs implements backend.JobQueue.
func (r *Router) Jobs(ctx context.Context) ([]*backend.Job, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.Jobs(ctx)
}

// Cancel implements backend.JobQueue.
func (r *Router) Cancel(ctx context.Context, id int64) (bool, string, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return false, "", err
	}
	return b.Cancel(ctx, id)
}

// WaitForChange implements backend.JobQueue.
func (r *Router) WaitForChange(ctx context.Context, id int64, fields []string, prevInfo []any, prevSerial int64,
	timeout time.Duration) ([]any, [][]any, bool, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	return b.WaitForChange(ctx, id, fields, prevInfo, prevSerial, timeout)
}

// Watch implements backend.JobQueue.
func (r *Router) Watch(ctx context.Context, id int64) (<-chan *backend.Job, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return nil, err
	}
	return b.Watch(ctx, id)
}

// ReplaceFilter implements backend.FilterRules.
func (r *Router) ReplaceFilter(ctx context.Context, uuid string, rule backend.FilterRuleSpec) (string, error) {
	b, err := r.pick(ctx)
	if err != nil {
		return "", err
	}
	return b.ReplaceFilter(ctx, uuid, rule)
}

// DeleteFilter implements backend.FilterRules.
func (r *Router) DeleteFilter(ctx context.Context, uuid string) error {
	b, err := r.pick(ctx)
	if err != nil {
		return err
	}
	return b.DeleteFilter(ctx, uuid)
}

// version is a state version of one cluster: the services' caches of
// converted answers never mix two clusters.
type version struct {
	cluster string
	v       any
}

// StateVersion implements backend.Versioned: the call's cluster's version,
// with its name; nil for a cluster whose backend is not versioned (or an
// unknown one): nothing of it is reused.
func (r *Router) StateVersion(ctx context.Context) any {
	name, ok := r.Resolve(backend.ClusterFrom(ctx))
	if ok {
		if vb, isV := r.backends[name].(backend.Versioned); isV {
			if v := vb.StateVersion(ctx); v != nil {
				return version{name, v}
			}
		}
	}
	return nil
}
