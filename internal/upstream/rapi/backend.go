package rapi

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Backend is a real Ganeti cluster behind its RAPI.
type Backend struct {
	c *client
	// idem maps idempotency keys to the job ids they created.
	idem       *idemMap
	idemFlight singleflight.Group
	// waitForbidden is set once the upstream refused a job wait (a
	// read-only service user): waits then poll.
	waitMu        sync.Mutex
	waitForbidden bool
	wg            sync.WaitGroup
}

var _ backend.Backend = (*Backend)(nil)

// New returns the upstream backend; Start begins its health checks.
func New(cfg Config) (*Backend, error) {
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Backend{c: c, idem: newIdemMap(c.cfg.IdempotencyTTL, c.cfg.IdempotencyMax)}, nil
}

// Start finds the master and checks it every health interval until Close.
func (b *Backend) Start(ctx context.Context) {
	b.checkHealth(ctx)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(b.c.cfg.HealthInterval)
		defer t.Stop()
		for {
			select {
			case <-b.c.stop:
				return
			case <-t.C:
				b.checkHealth(context.Background())
			}
		}
	}()
}

// Close stops the health checks and the job watchers.
func (b *Backend) Close() {
	b.c.stopOnce.Do(func() { close(b.c.stop) })
	b.wg.Wait()
}

// Health is nil when the upstream's master answered the last check.
func (b *Backend) Health() error {
	if p := b.c.healthy.Load(); p != nil {
		return *p
	}
	return errors.New("upstream not checked yet")
}

// Stats are counters for tests and metrics: upstream calls made and the
// most in flight at once.
func (b *Backend) Stats() (calls, maxInFlight int64) { return b.c.calls.Load(), b.c.maxSeen.Load() }

// checkHealth asks every address for /2/info, the current master first:
// the first that answers (one whose host is the master's name preferred)
// becomes the master. Ganeti runs its RAPI on the master only, so after a
// master failover the old address stops answering and the new one does.
func (b *Backend) checkHealth(ctx context.Context) {
	c := b.c
	n := len(c.cfg.URLs)
	cur := int(c.master.Load())
	found := -1
	for i := 0; i < n; i++ {
		idx := (cur + i) % n
		master, err := c.probe(ctx, c.cfg.URLs[idx])
		if err != nil {
			continue
		}
		if found < 0 {
			found = idx
		}
		if u, _ := url.Parse(c.cfg.URLs[idx]); u != nil && master != "" && (u.Hostname() == master || strings.HasPrefix(master, u.Hostname()+".")) {
			found = idx
			break
		}
		if n == 1 {
			break
		}
	}
	if found < 0 {
		err := errors.New("upstream unreachable")
		c.healthy.Store(&err)
		if c.cfg.OnHealth != nil {
			c.cfg.OnHealth(err)
		}
		return
	}
	if int(c.master.Swap(int32(found))) != found {
		c.log.Info("upstream master changed", "index", found)
	}
	var ok error
	c.healthy.Store(&ok)
	if c.cfg.OnHealth != nil {
		c.cfg.OnHealth(nil)
	}
}

// probe is one health check: GET /2/info outside the cap and the breaker,
// with the call timeout; the master's name.
func (c *client) probe(ctx context.Context, base string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.Timeout, 5*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/2/info", nil)
	if err != nil {
		return "", err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", errors.New("unreachable")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var info struct {
		Master string `json:"master"`
	}
	buf := make([]byte, 0, 4096)
	for {
		p := make([]byte, 4096)
		k, err := resp.Body.Read(p)
		buf = append(buf, p[:k]...)
		if err != nil || len(buf) > 1<<20 {
			break
		}
	}
	v, err := backend.DecodeValue(buf)
	if m, ok := v.(map[string]any); ok && err == nil {
		info.Master, _ = m["master"].(string)
	}
	return info.Master, nil
}

// ---------------------------------------------------------------- reads

func (b *Backend) getValue(ctx context.Context, path string) (any, error) {
	p, err := b.c.read(ctx, http.MethodGet, path, nil, decode)
	if err != nil {
		return nil, err
	}
	return p.val, nil
}

func (b *Backend) ClusterInfo(ctx context.Context) (map[string]any, error) {
	v, err := b.getValue(ctx, "/2/info")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badAnswer("/2/info")
	}
	return m, nil
}

func badAnswer(what string) error {
	return errs.BadGateway("The upstream Ganeti cluster sent an unexpected answer to %s", what)
}

// keyField is the field that names an object of a query resource.
func keyField(resource string) string {
	switch resource {
	case backend.ResFilter:
		return "uuid"
	case backend.ResJob:
		return "id"
	}
	return "name"
}

func (b *Backend) Names(ctx context.Context, resource string) ([]string, error) {
	res, err := b.query(ctx, resource, []string{keyField(resource)}, nil)
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

// kindTitle is how Ganeti names an object kind in "not known" messages.
var kindTitle = map[string]string{
	backend.ResInstance: "Instance", backend.ResNode: "Node", backend.ResGroup: "Group",
	backend.ResNetwork: "Network", backend.ResFilter: "Filter", backend.ResJob: "Job",
}

func (b *Backend) Get(ctx context.Context, resource, name string, fields []string) ([]backend.Cell, error) {
	res, err := b.query(ctx, resource, fields, []any{"=", keyField(resource), name})
	if err != nil {
		return nil, err
	}
	if len(res.Data) == 0 {
		return nil, errs.NotFound(kindTitle[resource], name)
	}
	return res.Data[0], nil
}

func (b *Backend) Query(ctx context.Context, resource string, fields []string, filter any, lim backend.QueryLimits) (*backend.QueryResult, error) {
	p, err := b.queryParsed(ctx, resource, fields, filter)
	if err != nil {
		return nil, err
	}
	if lim.MaxBytes > 0 && p.size > lim.MaxBytes {
		return nil, errs.TooLarge("Query result too large: about %d bytes, at most %d", p.size, lim.MaxBytes)
	}
	if lim.Admit != nil {
		if err := lim.Admit(p.size); err != nil {
			return nil, err
		}
	}
	return p.val.(*backend.QueryResult), nil
}

func (b *Backend) query(ctx context.Context, resource string, fields []string, filter any) (*backend.QueryResult, error) {
	p, err := b.queryParsed(ctx, resource, fields, filter)
	if err != nil {
		return nil, err
	}
	return p.val.(*backend.QueryResult), nil
}

// queryParsed is PUT /2/query/{resource}: Ganeti's query with a filter,
// answering every field the cluster knows (a newer Ganeti's too).
func (b *Backend) queryParsed(ctx context.Context, resource string, fields []string, filter any) (parsed, error) {
	req := map[string]any{"fields": nonNilStrings(fields)}
	if filter != nil {
		req["qfilter"] = filter
	}
	return b.c.read(ctx, http.MethodPut, "/2/query/"+url.PathEscape(resource), req,
		func(body []byte) (any, error) { return parseQueryResult(body) })
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func parseQueryResult(body []byte) (*backend.QueryResult, error) {
	v, err := decode(body)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badAnswer("a query")
	}
	res := &backend.QueryResult{}
	defs, _ := m["fields"].([]any)
	for _, d := range defs {
		dm, _ := d.(map[string]any)
		res.Fields = append(res.Fields, fieldDef(dm))
	}
	rows, _ := m["data"].([]any)
	res.Data = make([][]backend.Cell, 0, len(rows))
	for _, r := range rows {
		cells, _ := r.([]any)
		row := make([]backend.Cell, len(cells))
		for i, c := range cells {
			pair, _ := c.([]any)
			if len(pair) != 2 {
				return nil, badAnswer("a query")
			}
			st, _ := pair[0].(int64)
			row[i] = backend.Cell{Status: int(st), Value: pair[1]}
		}
		res.Data = append(res.Data, row)
	}
	return res, nil
}

func fieldDef(m map[string]any) backend.FieldDef {
	s := func(k string) string { v, _ := m[k].(string); return v }
	return backend.FieldDef{Name: s("name"), Title: s("title"), Kind: s("kind"), Doc: s("doc")}
}

func (b *Backend) QueryFields(ctx context.Context, resource string, fields []string) ([]backend.FieldDef, error) {
	path := "/2/query/" + url.PathEscape(resource) + "/fields"
	if len(fields) > 0 {
		path += "?fields=" + url.QueryEscape(strings.Join(fields, ","))
	}
	v, err := b.getValue(ctx, path)
	if err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok {
		v = m["fields"]
	}
	list, ok := v.([]any)
	if !ok {
		return nil, badAnswer("a field query")
	}
	out := make([]backend.FieldDef, 0, len(list))
	for _, d := range list {
		dm, _ := d.(map[string]any)
		out = append(out, fieldDef(dm))
	}
	return out, nil
}

// tagPath is the RAPI path of an object's tags.
func tagPath(kind, name string) (string, error) {
	n := url.PathEscape(name)
	switch kind {
	case backend.TagCluster:
		return "/2/tags", nil
	case backend.TagNode:
		return "/2/nodes/" + n + "/tags", nil
	case backend.TagNodeGroup:
		return "/2/groups/" + n + "/tags", nil
	case backend.TagInstance:
		return "/2/instances/" + n + "/tags", nil
	case backend.TagNetwork:
		return "/2/networks/" + n + "/tags", nil
	}
	return "", errs.BadRequest("Unknown tag kind '%s'", kind)
}

func (b *Backend) Tags(ctx context.Context, kind, name string) ([]string, error) {
	path, err := tagPath(kind, name)
	if err != nil {
		return nil, err
	}
	v, err := b.getValue(ctx, path)
	if err != nil {
		return nil, err
	}
	return stringList(v)
}

func stringList(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok && v != nil {
		return nil, badAnswer("a list read")
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out, nil
}

func (b *Backend) NodeRole(ctx context.Context, name string) (string, error) {
	v, err := b.getValue(ctx, "/2/nodes/"+url.PathEscape(name)+"/role")
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", badAnswer("a node role read")
	}
	return s, nil
}

func (b *Backend) InstanceConsole(ctx context.Context, name string) (map[string]any, error) {
	v, err := b.getValue(ctx, "/2/instances/"+url.PathEscape(name)+"/console")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badAnswer("a console read")
	}
	return m, nil
}

func (b *Backend) OSNames(ctx context.Context) ([]string, error) {
	v, err := b.getValue(ctx, "/2/os")
	if err != nil {
		return nil, err
	}
	return stringList(v)
}

// ---------------------------------------------------------------- filters

func (b *Backend) ReplaceFilter(ctx context.Context, uuid string, spec backend.FilterRuleSpec) (string, error) {
	body := map[string]any{"priority": spec.Priority, "predicates": nonNilAny(spec.Predicates)}
	if spec.Action != nil {
		body["action"] = spec.Action
	}
	if spec.Reason != nil {
		body["reason"] = spec.Reason
	}
	method, path := http.MethodPost, "/2/filters"
	if uuid != "" {
		method, path = http.MethodPut, "/2/filters/"+url.PathEscape(uuid)
	}
	r, err := b.c.call(ctx, method, path, body, 0)
	if err != nil {
		return "", err
	}
	b.invalidate()
	v, err := decode(r.body)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", badAnswer("a filter change")
	}
	return s, nil
}

func nonNilAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func (b *Backend) DeleteFilter(ctx context.Context, uuid string) error {
	_, err := b.c.call(ctx, http.MethodDelete, "/2/filters/"+url.PathEscape(uuid), nil, 0)
	if err == nil {
		b.invalidate()
	}
	return err
}

func (b *Backend) invalidate() {
	if b.c.cache != nil {
		b.c.cache.invalidate()
	}
}

// ---------------------------------------------------------------- submit

// Supports reports whether a RAPI route submits the opcode.
func (b *Backend) Supports(opID string) bool { return reachable(opID) }

// Unsupported is the error for an opcode no RAPI route submits:
// FAILED_PRECONDITION naming the transport.
func (b *Backend) Unsupported(opID string) error {
	return unreachable("%s cannot be submitted over RAPI: no RAPI route submits it", opID)
}

// reasonText is the ?reason= of a submission, which Ganeti's rlib2 puts
// first in the reason trail as ["gnt:user", text, now]. A client's own
// reason is sent unchanged (job filter rules match reasons exactly); a
// submission without one gets who asked: "ganeti-gateway user=<user>
// trace=<trace id>", so that gnt-job info on the cluster shows who did
// what. The gateway's audit log has the user of every job either way.
func reasonText(ctx context.Context, ops []*rapiv2.OpCode) string {
	if len(ops) == 1 {
		if client := clientReason(ops[0]); client != "" {
			return client
		}
	}
	o := backend.OriginFrom(ctx)
	parts := []string{"ganeti-gateway"}
	if o.User != "" {
		parts = append(parts, "user="+o.User)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		parts = append(parts, "trace="+sc.TraceID().String())
	}
	return strings.Join(parts, " ")
}

// clientReason is the client's reason (the "gnt:user" entry the services
// put in the opcode's reason trail).
func clientReason(op *rapiv2.OpCode) string {
	msg := backend.OpMember(op)
	if msg == nil {
		return ""
	}
	m := msg.ProtoReflect()
	fd := m.Descriptor().Fields().ByJSONName("reason")
	if fd == nil || !fd.IsList() {
		return ""
	}
	l := m.Get(fd).List()
	for i := 0; i < l.Len(); i++ {
		e, ok := l.Get(i).Message().Interface().(*rapiv2.ReasonEntry)
		if ok && e.GetSource() == "gnt:user" {
			return e.GetReason()
		}
	}
	return ""
}

// Submit sends the job's opcode to the RAPI route that submits it. It is
// never retried, unless the submission carries an idempotency key: then a
// connection that could not be made is tried again, and the same key
// (same scope and fingerprint) within the key TTL gets the first job's id
// without an upstream call.
func (b *Backend) Submit(ctx context.Context, ops []*rapiv2.OpCode, opt backend.SubmitOptions) (int64, error) {
	req, err := buildRequest(ops, reasonText(ctx, ops))
	if err != nil {
		return 0, err
	}
	if opt.Priority != nil {
		return 0, unreachable("A job priority cannot be set over RAPI")
	}
	k := opt.Idempotency
	if k == nil {
		return b.submit(ctx, req, false)
	}
	key := k.Scope + "\x00" + k.Key
	ch := b.idemFlight.DoChan(key, func() (any, error) {
		if id, fp, ok := b.idem.get(key); ok {
			if fp != k.Fingerprint {
				return int64(0), errs.Conflict("Idempotency key %q was used for another request", k.Key)
			}
			return id, nil
		}
		id, err := b.submit(context.WithoutCancel(ctx), req, true)
		if err != nil {
			return int64(0), err
		}
		b.idem.put(key, k.Fingerprint, id)
		return id, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return 0, r.Err
		}
		return r.Val.(int64), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (b *Backend) submit(ctx context.Context, req *request, retry bool) (int64, error) {
	var body any
	if req.body != nil {
		body = req.body
	}
	attempts := 1
	if retry {
		attempts = 3
	}
	var r *response
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-time.After(time.Duration(i) * 200 * time.Millisecond):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		r, err = b.c.callWrite(ctx, req.verb, req.path, body)
		if err == nil || !errors.Is(err, errNotSent) {
			break
		}
	}
	if errors.Is(err, errNotSent) {
		err = unavailable("did not answer")
	}
	if err != nil {
		return 0, err
	}
	id, err := jobID(r.body)
	if err != nil {
		return 0, err
	}
	if b.c.cache != nil {
		b.watchEnd(id)
	}
	return id, nil
}

// jobID parses a submission's answer: the job id as a number or a string.
func jobID(body []byte) (int64, error) {
	v, err := decode(body)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		if id, err := strconv.ParseInt(x, 10, 64); err == nil {
			return id, nil
		}
	}
	return 0, badAnswer("a job submission")
}

// watchEnd drops the read cache when the job ends (polled with backoff).
func (b *Backend) watchEnd(id int64) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		delay := 200 * time.Millisecond
		for {
			select {
			case <-b.c.stop:
				return
			case <-time.After(delay):
			}
			j, ok, err := b.Job(context.Background(), id)
			if err == nil && (!ok || j.Finalized()) {
				b.invalidate()
				return
			}
			delay = min(delay*2, 5*time.Second)
		}
	}()
}

// ---------------------------------------------------------------- idempotency keys

// idemMap is the bounded key -> job id map (oldest dropped first).
type idemMap struct {
	ttl time.Duration
	max int
	mu  sync.Mutex
	m   map[string]*list.Element
	l   *list.List
}

type idemEntry struct {
	key, fp string
	id      int64
	expires time.Time
}

func newIdemMap(ttl time.Duration, max int) *idemMap {
	return &idemMap{ttl: ttl, max: max, m: map[string]*list.Element{}, l: list.New()}
}

func (m *idemMap) get(key string) (int64, string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[key]
	if !ok {
		return 0, "", false
	}
	ent := e.Value.(*idemEntry)
	if time.Now().After(ent.expires) {
		m.l.Remove(e)
		delete(m.m, key)
		return 0, "", false
	}
	return ent.id, ent.fp, true
}

func (m *idemMap) put(key, fp string, id int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.m[key]; ok {
		m.l.Remove(e)
	}
	m.m[key] = m.l.PushBack(&idemEntry{key: key, fp: fp, id: id, expires: time.Now().Add(m.ttl)})
	for m.l.Len() > m.max {
		front := m.l.Front()
		delete(m.m, front.Value.(*idemEntry).key)
		m.l.Remove(front)
	}
}
