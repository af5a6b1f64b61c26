package luxi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// fakeLuxid is a luxi server on a unix socket in a temporary directory:
// answer gives the raw bytes written for each request (nil: close the
// connection without answering; empty: answer nothing, read on); they are written in small pieces so the
// client sees partial reads.
type fakeLuxid struct {
	path    string
	accepts atomic.Int64
	mu      sync.Mutex
	reqs    []request
	closed  chan struct{} // a connection the client closed
}

type rawRequest struct {
	Method  string            `json:"method"`
	Args    []json.RawMessage `json:"args"`
	Version int               `json:"version"`
}

func newFakeLuxid(t *testing.T, answer func(r rawRequest) []byte) *fakeLuxid {
	t.Helper()
	dir, err := os.MkdirTemp("", "luxi") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeLuxid{path: filepath.Join(dir, "sock"), closed: make(chan struct{}, 100)}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepts.Add(1)
			go f.serve(c, answer)
		}
	}()
	return f
}

func (f *fakeLuxid) serve(c net.Conn, answer func(r rawRequest) []byte) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		msg, err := r.ReadBytes(eom)
		if err != nil {
			f.closed <- struct{}{}
			return
		}
		var req rawRequest
		if err := json.Unmarshal(msg[:len(msg)-1], &req); err != nil {
			return
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, request{Method: req.Method, Args: req.Args, Version: req.Version})
		f.mu.Unlock()
		out := answer(req)
		if out == nil {
			return
		}
		for len(out) > 0 { // in pieces of 7 bytes
			n := min(7, len(out))
			if _, err := c.Write(out[:n]); err != nil {
				return
			}
			out = out[n:]
		}
	}
}

func (f *fakeLuxid) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

func ok(result string) []byte {
	return []byte(`{"success":true,"result":` + result + `,"version":3000000}` + "\x03")
}

func fail(result string) []byte { return []byte(`{"success":false,"result":` + result + "}\x03") }

func TestCall(t *testing.T) {
	big := `"` + strings.Repeat("x", 200<<10) + `"`
	for _, tc := range []struct {
		name   string
		answer []byte
		want   string // the result, or
		class  string // the domain error's class
		code   errs.Code
		msg    string
	}{
		{name: "result in pieces", answer: ok(`{"name":"c1","n":[1,2]}`), want: `{"name":"c1","n":[1,2]}`},
		{name: "large result", answer: ok(big), want: big},
		{name: "prereq error", answer: fail(`["OpPrereqError",["Instance name x not found","unknown_entity"]]`),
			class: errs.ClassPrereq, code: errs.CodeNoEnt, msg: "Instance name x not found"},
		{name: "parameter error", answer: fail(`["ParameterError",["Can't find field named 'x'"]]`),
			class: errs.ClassQuery, code: errs.CodeInval, msg: "Can't find field named 'x'"},
		{name: "other class", answer: fail(`["GenericError",["Query 'x' not supported"]]`),
			class: "GenericError", msg: "Query 'x' not supported"},
		{name: "message only", answer: fail(`"Failed to parse request: x"`),
			class: "LuxiError", code: errs.CodeInval, msg: "Failed to parse request: x"},
		{name: "not JSON", answer: []byte("garbage\x03"), class: errs.ClassUnavailable},
		{name: "no success key", answer: []byte(`{"result":1}` + "\x03"), class: errs.ClassUnavailable},
		{name: "wrong version", answer: []byte(`{"success":true,"result":1,"version":2}` + "\x03"), class: errs.ClassUnavailable},
		{name: "closed mid-answer", answer: []byte(`{"success":true,"res`), class: errs.ClassUnavailable},
		{name: "closed before answer", answer: nil, class: errs.ClassUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f *fakeLuxid
			if tc.answer != nil && !strings.HasSuffix(string(tc.answer), "\x03") {
				f = closingMidAnswer(t, tc.answer)
			} else {
				f = newFakeLuxid(t, func(rawRequest) []byte { return tc.answer })
			}
			c := NewClient(ClientConfig{Socket: f.path, CallTimeout: 2 * time.Second})
			defer c.Close()
			var got json.RawMessage
			err := c.Call(context.Background(), MethodQueryClusterInfo, nil, 0, &got)
			if tc.class == "" {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %.60s, %v; want %.60s", got, err, tc.want)
				}
				return
			}
			de, isDomain := errs.As(err)
			if !isDomain || de.Class != tc.class || de.Code != tc.code || (tc.msg != "" && de.Msg != tc.msg) {
				t.Fatalf("error %v (domain %+v), want class %s code %q msg %q", err, de, tc.class, tc.code, tc.msg)
			}
		})
	}
}

// closingMidAnswer is a server that writes part of an answer and closes.
func closingMidAnswer(t *testing.T, part []byte) *fakeLuxid {
	t.Helper()
	dir, err := os.MkdirTemp("", "luxi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeLuxid{path: filepath.Join(dir, "sock")}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := bufio.NewReader(c).ReadBytes(eom); err == nil {
					c.Write(part)
				}
			}()
		}
	}()
	return f
}

func TestRequestFraming(t *testing.T) {
	f := newFakeLuxid(t, func(rawRequest) []byte { return ok(`null`) })
	c := NewClient(ClientConfig{Socket: f.path})
	defer c.Close()
	if err := c.Call(context.Background(), MethodQuery, []any{"node", []string{"name"}, nil}, 0, nil); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].Method != MethodQuery || reqs[0].Version != ProtocolVersion {
		t.Fatalf("requests %+v", reqs)
	}
	args, _ := json.Marshal(reqs[0].Args)
	if string(args) != `["node",["name"],null]` {
		t.Fatalf("args %s", args)
	}
}

func TestPoolReusesConnections(t *testing.T) {
	f := newFakeLuxid(t, func(rawRequest) []byte { return ok(`1`) })
	c := NewClient(ClientConfig{Socket: f.path, MaxConns: 2})
	defer c.Close()
	for range 5 {
		if err := c.Call(context.Background(), MethodQueryClusterInfo, nil, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.accepts.Load(); n != 1 {
		t.Fatalf("%d connections for 5 sequential calls, want 1", n)
	}
	// A failed call's connection is not reused.
	f2 := newFakeLuxid(t, func(rawRequest) []byte { return fail(`["OpPrereqError",["x","wrong_input"]]`) })
	c2 := NewClient(ClientConfig{Socket: f2.path})
	defer c2.Close()
	for range 3 {
		c2.Call(context.Background(), MethodQueryClusterInfo, nil, 0, nil)
	}
	if n := f2.accepts.Load(); n != 3 {
		t.Fatalf("%d connections for 3 failed calls, want 3", n)
	}
}

func TestPoolCapsConcurrentCalls(t *testing.T) {
	var inFlight, peak atomic.Int64
	f := newFakeLuxid(t, func(rawRequest) []byte {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inFlight.Add(-1)
		return ok(`1`)
	})
	c := NewClient(ClientConfig{Socket: f.path, MaxConns: 3})
	defer c.Close()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := c.Call(context.Background(), MethodQueryClusterInfo, nil, 0, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak of %d concurrent calls, want 2..3", p)
	}
	if n := f.accepts.Load(); n > 3 {
		t.Fatalf("%d connections, want at most 3", n)
	}
}

func TestCancelClosesConnection(t *testing.T) {
	f := newFakeLuxid(t, func(rawRequest) []byte { return []byte{} })
	c := NewClient(ClientConfig{Socket: f.path})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	err := c.Call(ctx, MethodQueryClusterInfo, nil, 0, nil)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v, want context.Canceled at once", err, time.Since(start))
	}
	select {
	case <-f.closed:
	case <-time.After(2 * time.Second):
		t.Fatal("the connection was not closed")
	}
}

func TestCallTimeout(t *testing.T) {
	f := newFakeLuxid(t, func(rawRequest) []byte { return []byte{} })
	c := NewClient(ClientConfig{Socket: f.path, CallTimeout: 100 * time.Millisecond})
	defer c.Close()
	err := c.Call(context.Background(), MethodQueryClusterInfo, nil, 0, nil)
	if de, ok := errs.As(err); !ok || de.Class != errs.ClassUnavailable {
		t.Fatalf("err %v, want unavailable", err)
	}
	if strings.Contains(errUnavailable().Error(), "timeout") {
		t.Fatal("the client's message names Go's error")
	}
}

func TestNoSocket(t *testing.T) {
	c := NewClient(ClientConfig{Socket: filepath.Join(t.TempDir(), "none")})
	err := c.Call(context.Background(), MethodQueryClusterInfo, nil, 0, nil)
	if de, ok := errs.As(err); !ok || de.Class != errs.ClassUnavailable {
		t.Fatalf("err %v, want unavailable", err)
	}
}

func tagsOp(tags ...string) *rapiv2.OpCode {
	k := rapiv2.TagKind(1)
	return &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: &k, Tags: tags}}}
}

func TestSubmitCarriesOriginAndPriority(t *testing.T) {
	f := newFakeLuxid(t, func(r rawRequest) []byte { return ok(`42`) })
	b, err := New(Config{Socket: f.path})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := backend.WithOrigin(context.Background(), backend.Origin{User: "alice", Route: "PUT /2/tags"})
	prio := -10
	id, err := b.Submit(ctx, []*rapiv2.OpCode{tagsOp("a"), tagsOp("b")}, backend.SubmitOptions{Priority: &prio})
	if err != nil || id != 42 {
		t.Fatalf("Submit: %d, %v", id, err)
	}
	req := f.requests()[0]
	var jobs [][]map[string]any
	if err := json.Unmarshal(mustJSON(t, req.Args), &jobs); err != nil || len(jobs) != 1 || len(jobs[0]) != 2 {
		t.Fatalf("SubmitJob args %s (%v)", mustJSON(t, req.Args), err)
	}
	for i, op := range jobs[0] {
		if op["OP_ID"] != "OP_TAGS_SET" || op["priority"] != float64(-10) {
			t.Fatalf("op %d: %v", i, op)
		}
		reason, _ := op["reason"].([]any)
		last, _ := reason[len(reason)-1].([]any)
		if len(last) != 3 || last[0] != ReasonSource || last[1] != "user=alice route=PUT /2/tags" {
			t.Fatalf("op %d reason %v", i, op["reason"])
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIdempotentSubmit(t *testing.T) {
	var n atomic.Int64
	f := newFakeLuxid(t, func(r rawRequest) []byte { return ok(mustString(n.Add(1))) })
	b, _ := New(Config{Socket: f.path})
	defer b.Close()
	key := &backend.Idempotency{Scope: "alice", Key: "k1", Fingerprint: "f1"}
	var wg sync.WaitGroup
	ids := make([]int64, 20)
	for i := range ids {
		wg.Go(func() {
			ids[i], _ = b.Submit(context.Background(), []*rapiv2.OpCode{tagsOp("a")}, backend.SubmitOptions{Idempotency: key})
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != 1 {
			t.Fatalf("ids %v, want all 1", ids)
		}
	}
	_, err := b.Submit(context.Background(), []*rapiv2.OpCode{tagsOp("a")},
		backend.SubmitOptions{Idempotency: &backend.Idempotency{Scope: "alice", Key: "k1", Fingerprint: "other"}})
	if de, ok := errs.As(err); !ok || de.Class != errs.ClassConflict {
		t.Fatalf("other fingerprint: %v, want a conflict", err)
	}
	if got := len(f.requests()); got != 1 {
		t.Fatalf("%d submissions reached luxid, want 1", got)
	}
}

func mustString(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestJobsAndWaits(t *testing.T) {
	jobRow := `[7,"success",[{"OP_ID":"OP_TAGS_SET","kind":"cluster","tags":["a"],"reason":[["gnt:client:ganeti-gateway","user=u",1]],"priority":0,"debug_level":0,"depends":null,"comment":null}],` +
		`["TAGS_SET(a)"],["success"],[null],[[[1,[1700000000,5],"message","hi"]]],[[1700000000,1]],[[1700000000,2]],[[1700000000,3]],[0],0,[1700000000,0],[1700000000,1],[1700000000,3]]`
	f := newFakeLuxid(t, func(r rawRequest) []byte {
		switch r.Method {
		case MethodQueryJobs:
			if string(r.Args[0]) == "[7]" {
				return ok(`[` + jobRow + `]`)
			}
			return ok(`[[8,null,null,null,null,null,null,null,null,null,null,null,null,null,null]]`)
		case MethodWaitForJobChange:
			if string(r.Args[0]) == "9" {
				return fail(`["JobLost",["Can't load job file"]]`)
			}
			return ok(`"nochange"`)
		}
		return fail(`"unexpected"`)
	})
	b, _ := New(Config{Socket: f.path})
	defer b.Close()
	ctx := context.Background()
	j, found, err := b.Job(ctx, 7)
	if err != nil || !found {
		t.Fatalf("Job 7: %v %v", found, err)
	}
	if j.ID != 7 || j.Status != "success" || backend.OpID(j.Ops[0]) != "OP_TAGS_SET" || len(j.OpLog[0]) != 1 ||
		j.OpLog[0][0].Message != "hi" || j.EndTS.Usec != 3 || !j.Finalized() || j.Version <= j.OpStatusVersion {
		t.Fatalf("job 7: %+v", j)
	}
	if _, found, err := b.Job(ctx, 8); found || err != nil {
		t.Fatalf("unknown job 8: found %v, err %v", found, err)
	}
	_, _, changed, err := b.WaitForChange(ctx, 7, []string{"status"}, []any{"running"}, -1, 1500*time.Millisecond)
	if changed || err != nil {
		t.Fatalf("nochange: %v %v", changed, err)
	}
	if _, _, _, err := b.WaitForChange(ctx, 9, []string{"status"}, nil, -1, time.Second); err == nil {
		t.Fatal("a lost job waits")
	} else if de, ok := errs.As(err); !ok || de.Code != errs.CodeNoEnt {
		t.Fatalf("lost job: %v, want NoEnt", err)
	}
	// 1.5 s is asked as 2 whole seconds in one call.
	var waits int
	for _, r := range f.requests() {
		if r.Method == MethodWaitForJobChange && string(mustJSON(t, r.Args)) == `[7,["status"],["running"],-1,2]` {
			waits++
		}
	}
	if waits != 1 {
		t.Fatalf("%d waits of 2 s for a wait of 1.5 s, want 1", waits)
	}
}
