package luxi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// Config configures a Backend.
type Config struct {
	// Socket is the path of luxid's unix socket (required).
	Socket string
	// MaxConns caps the connections of ordinary calls
	// (DefaultMaxConns when 0); MaxWaits those held by job waits
	// (WaitForJobChange and Watch, 64 when 0).
	MaxConns, MaxWaits int
	// CallTimeout bounds one call (DefaultCallTimeout when 0).
	CallTimeout time.Duration
	// IdempotencyRetention is how long a keyed submission is remembered
	// (24 h when 0); the memory is this process's.
	IdempotencyRetention time.Duration
}

// Backend is a Ganeti cluster reached over luxi.
type Backend struct {
	calls *Client // ordinary calls
	waits *Client // WaitForJobChange, which holds its connection
	keys  *idempotency
}

var _ backend.Backend = (*Backend)(nil)

// New returns the backend of the luxi socket in cfg. It connects on
// demand: a cluster that is down makes calls fail, not New.
func New(cfg Config) (*Backend, error) {
	if cfg.Socket == "" {
		return nil, errors.New("luxi: no socket path")
	}
	if cfg.MaxWaits <= 0 {
		cfg.MaxWaits = 64
	}
	if cfg.IdempotencyRetention <= 0 {
		cfg.IdempotencyRetention = 24 * time.Hour
	}
	return &Backend{
		calls: NewClient(ClientConfig{Socket: cfg.Socket, MaxConns: cfg.MaxConns, CallTimeout: cfg.CallTimeout}),
		waits: NewClient(ClientConfig{Socket: cfg.Socket, MaxConns: cfg.MaxWaits, CallTimeout: cfg.CallTimeout}),
		keys:  newIdempotency(cfg.IdempotencyRetention),
	}, nil
}

// Close closes the idle connections.
func (b *Backend) Close() error {
	b.calls.Close()
	return b.waits.Close()
}

func (b *Backend) call(ctx context.Context, method string, out any, args ...any) error {
	return b.calls.Call(ctx, method, args, 0, out)
}

// Reads ----------------------------------------------------------------------

func (b *Backend) ClusterInfo(ctx context.Context) (map[string]any, error) {
	var raw json.RawMessage
	if err := b.call(ctx, MethodQueryClusterInfo, &raw); err != nil {
		return nil, err
	}
	v, err := backend.DecodeValue(raw)
	if err != nil {
		return nil, protocolErr(MethodQueryClusterInfo, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, protocolErr(MethodQueryClusterInfo, errors.New("cluster info is not an object"))
	}
	return m, nil
}

// nameField is the field that names the objects of a resource.
func nameField(resource string) string {
	switch resource {
	case backend.ResFilter:
		return "uuid"
	case backend.ResJob:
		return "id"
	}
	return "name"
}

func (b *Backend) Names(ctx context.Context, resource string) ([]string, error) {
	res, err := b.query(ctx, resource, []string{nameField(resource)}, nil, backend.QueryLimits{})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(res.Data))
	for _, row := range res.Data {
		if len(row) == 1 {
			out = append(out, fmt.Sprint(row[0].Value))
		}
	}
	return out, nil
}

func (b *Backend) Get(ctx context.Context, resource, name string, fields []string) ([]backend.Cell, error) {
	filter := []any{"|", []any{"=", nameField(resource), name}}
	res, err := b.query(ctx, resource, fields, filter, backend.QueryLimits{})
	if err != nil {
		return nil, err
	}
	if len(res.Data) == 0 {
		return nil, errs.NotFound(objectKind(resource), name)
	}
	return res.Data[0], nil
}

func objectKind(resource string) string {
	switch resource {
	case backend.ResGroup:
		return "Group"
	case backend.ResFilter:
		return "Filter"
	}
	if resource == "" {
		return "Object"
	}
	return strings.ToUpper(resource[:1]) + resource[1:]
}

func (b *Backend) Query(ctx context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	return b.query(ctx, resource, fields, filter, lim)
}

func (b *Backend) query(ctx context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	if fields == nil {
		fields = []string{}
	}
	var raw json.RawMessage
	if err := b.call(ctx, MethodQuery, &raw, resource, fields, filter); err != nil {
		return nil, err
	}
	if lim.MaxBytes > 0 && int64(len(raw)) > lim.MaxBytes {
		return nil, errs.TooLarge("The query result is larger than %d bytes", lim.MaxBytes)
	}
	if lim.Admit != nil {
		if err := lim.Admit(int64(len(raw))); err != nil {
			return nil, err
		}
	}
	res, err := decodeQueryResult(raw)
	if err != nil {
		return nil, protocolErr(MethodQuery, err)
	}
	return res, nil
}

func (b *Backend) QueryFields(ctx context.Context, resource string, fields []string) ([]backend.FieldDef, error) {
	if fields == nil {
		fields = []string{}
	}
	var res struct {
		Fields []backend.FieldDef `json:"fields"`
	}
	if err := b.call(ctx, MethodQueryFields, &res, resource, fields); err != nil {
		return nil, err
	}
	return res.Fields, nil
}

func (b *Backend) Tags(ctx context.Context, kind, name string) ([]string, error) {
	if kind == backend.TagCluster {
		name = ""
	}
	var tags []string
	if err := b.call(ctx, MethodQueryTags, &tags, kind, name); err != nil {
		return nil, err
	}
	sort.Strings(tags)
	return tags, nil
}

// roleNames are the node query's one-letter roles as RAPI shows them.
var roleNames = map[string]string{"M": "master", "C": "candidate", "R": "regular", "D": "drained", "O": "offline"}

func (b *Backend) NodeRole(ctx context.Context, name string) (string, error) {
	cells, err := b.Get(ctx, backend.ResNode, name, []string{"role"})
	if err != nil {
		return "", err
	}
	code, _ := cells[0].Value.(string)
	role, ok := roleNames[code]
	if !ok {
		return "", protocolErr(MethodQuery, fmt.Errorf("unknown node role %q", code))
	}
	return role, nil
}

func (b *Backend) InstanceConsole(ctx context.Context, name string) (map[string]any, error) {
	cells, err := b.Get(ctx, backend.ResInstance, name, []string{"console", "oper_state"})
	if err != nil {
		return nil, err
	}
	console, ok := cells[0].Value.(map[string]any)
	if running, _ := cells[1].Value.(bool); !running || cells[0].Status != backend.CellNormal || !ok {
		return nil, errs.Unavailable("Instance console unavailable")
	}
	return console, nil
}

// OSNames runs OpOsDiagnose as Ganeti's RAPI does (luxid's Query does not
// serve operating systems) and waits for its result.
func (b *Backend) OSNames(ctx context.Context) ([]string, error) {
	op := legacyjson.Object{
		{Key: "OP_ID", Value: "OP_OS_DIAGNOSE"},
		{Key: "output_fields", Value: []any{"name", "variants"}},
		{Key: "names", Value: []any{}},
	}
	id, err := b.submitValues(ctx, []legacyjson.Object{op}, backend.SubmitOptions{})
	if err != nil {
		return nil, err
	}
	job, err := b.waitEnd(ctx, id)
	if err != nil {
		return nil, err
	}
	if job.Status != backend.StatusSuccess || len(job.OpResult) != 1 {
		return nil, errs.Exec("Job %d for the OS list ended with status %s", id, job.Status)
	}
	rows, _ := job.OpResult[0].([]any)
	var names []string
	for _, r := range rows {
		pair, _ := r.([]any)
		if len(pair) != 2 {
			continue
		}
		name, _ := pair[0].(string)
		variants, _ := pair[1].([]any)
		if len(variants) == 0 {
			names = append(names, name)
		}
		for _, v := range variants {
			names = append(names, fmt.Sprintf("%s+%v", name, v))
		}
	}
	return names, nil
}

// waitEnd waits until job id has ended and returns it.
func (b *Backend) waitEnd(ctx context.Context, id int64) (*backend.Job, error) {
	ch, err := b.Watch(ctx, id)
	if err != nil {
		return nil, err
	}
	var last *backend.Job
	for j := range ch {
		last = j
	}
	if last == nil || !last.Finalized() {
		if err := ctx.Err(); err != nil {
			return nil, context.Cause(ctx)
		}
		return nil, errUnavailable()
	}
	return last, nil
}

// Filter rules -----------------------------------------------------------------

func (b *Backend) ReplaceFilter(ctx context.Context, uuid string, spec backend.FilterRuleSpec) (string, error) {
	var id any
	if uuid != "" {
		id = uuid
	}
	action := spec.Action
	if action == nil {
		action = backend.FilterContinue
	}
	preds := spec.Predicates
	if preds == nil {
		preds = []any{}
	}
	reason := append(slices.Clone(spec.Reason), reasonEntry(ctx))
	var out string
	if err := b.call(ctx, MethodReplaceFilter, &out, id, spec.Priority, preds, action, reason); err != nil {
		return "", err
	}
	return out, nil
}

func (b *Backend) DeleteFilter(ctx context.Context, uuid string) error {
	err := b.call(ctx, MethodDeleteFilter, nil, uuid)
	var re *RemoteError
	if errors.As(err, &re) && strings.Contains(re.message(), "does not exist") {
		return errs.Prereq(errs.CodeNoEnt, "%s", re.message())
	}
	return err
}

// The reason trail -------------------------------------------------------------

// ReasonSource is the source of the reason trail entry the gateway adds
// to every job and filter rule it submits (Ganeti's sources are
// "gnt:client:<tool>", "gnt:library:rlib2", ...).
const ReasonSource = "gnt:client:ganeti-gateway"

// reasonEntry is the gateway's reason trail entry for the call in ctx:
// [source, "user=U route=R trace=T", now in ns], naming the caller
// (backend.OriginFrom), what it called and its trace id.
func reasonEntry(ctx context.Context) []any {
	o := backend.OriginFrom(ctx)
	var parts []string
	user := o.User
	if user == "" {
		user = "anonymous"
	}
	parts = append(parts, "user="+user)
	switch {
	case o.Route != "":
		parts = append(parts, "route="+o.Route)
	case o.RPC != "":
		parts = append(parts, "rpc="+o.RPC)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		parts = append(parts, "trace="+sc.TraceID().String())
	}
	return []any{ReasonSource, strings.Join(parts, " "), time.Now().UnixNano()}
}

func protocolErr(method string, err error) error {
	return &TransportError{Method: method, Err: &ProtocolError{Msg: err.Error()}}
}

// secondsCeil is d in whole seconds, rounded up, at least 0.
func secondsCeil(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// decodeQueryResult parses a Query answer: {"fields": [...], "data": [[[status, value], ...], ...]}.
func decodeQueryResult(raw []byte) (*backend.QueryResult, error) {
	var r struct {
		Fields []backend.FieldDef  `json:"fields"`
		Data   [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	out := &backend.QueryResult{Fields: r.Fields, Data: make([][]backend.Cell, len(r.Data))}
	for i, row := range r.Data {
		cells := make([]backend.Cell, len(row))
		for k, c := range row {
			v, err := backend.DecodeValue(c)
			if err != nil {
				return nil, err
			}
			pair, ok := v.([]any)
			if !ok || len(pair) != 2 {
				return nil, fmt.Errorf("cell %d of row %d is not [status, value]", k, i)
			}
			st, ok := pair[0].(int64)
			if !ok {
				return nil, fmt.Errorf("cell %d of row %d has no status", k, i)
			}
			cells[k] = backend.Cell{Status: int(st), Value: pair[1]}
		}
		out.Data[i] = cells
	}
	return out, nil
}
