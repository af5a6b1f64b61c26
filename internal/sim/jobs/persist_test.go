package jobs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/lu"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// TestNextIDAboveArchive: job ids never restart below an archived job's id
// (a lost or stale next-id record would otherwise give ids that clients
// hold to new jobs).
func TestNextIDAboveArchive(t *testing.T) {
	v := newEnv(t, 0, nil)
	id := v.submit(tagsSet(kCluster, "", "a"))
	v.e.Start()
	v.wait(id)
	rec := recordOf(v.e, id)
	if err := v.e.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, model := v.st, v.model
	// The same job, archived under id 500, in a store whose next id says 2.
	rec.ID = 500
	b, err := encodeRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put(BucketQueue, keyNextID, []byte("2")); err != nil {
			return err
		}
		return tx.Put(BucketArchive, jobKey(500), b)
	}); err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop(context.Background())
	got, err := e.Submit(context.Background(), []*rapiv2.OpCode{tagsSet(kCluster, "", "b")}, SubmitOptions{})
	if err != nil || got != 501 {
		t.Errorf("new job id %d (%v), want 501", got, err)
	}
	if j, ok, err := e.Lookup(context.Background(), 500); !ok || err != nil || j.ID != 500 || !j.Archived {
		t.Errorf("Lookup(500) = %+v, %v, %v", j, ok, err)
	}
}

// TestDamagedRecords: a job record that does not decode, or is not the
// job its key names, refuses the engine's start naming bucket and key (a
// store.CorruptError); an archived one is an error when read, never a job
// and never "not found".
func TestDamagedRecords(t *testing.T) {
	good := func(t *testing.T) []byte {
		v := newEnv(t, 0, nil)
		id := v.submit(tagsSet(kCluster, "", "a"))
		b, err := encodeRecord(recordOf(v.e, id))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}(t)
	for _, tc := range []struct {
		name, key, val, want string
	}{
		{"not JSON", jobKey(1), `{"id":1,`, "record jobs/00000000000000000001 is damaged"},
		{"another job's key", jobKey(9), string(good), "holds job 1"},
		{"no opcodes", jobKey(1), `{"id":1,"ops":[],"opstatus":[]}`, "no opcodes"},
		{"unknown status", jobKey(1), strings.Replace(string(good), `"queued"`, `"done"`, 1), `unknown status "done"`},
		{"opcode not a proto", jobKey(1), badOp(t, good), "opcode 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newTestStore(t)
			model := openModel(t, st, 0)
			if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.Put(BucketJobs, tc.key, []byte(tc.val)) }); err != nil {
				t.Fatal(err)
			}
			e, err := New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet})
			if err == nil {
				e.Stop(context.Background())
				t.Fatal("the engine started on a damaged record")
			}
			var ce *store.CorruptError
			if !errors.As(err, &ce) || ce.Bucket != BucketJobs || ce.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v: want a CorruptError for %s/%s with %q", err, BucketJobs, tc.key, tc.want)
			}

			// The same record archived: the engine starts, reading it is
			// an error.
			st = newTestStore(t)
			model = openModel(t, st, 0)
			if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.Put(BucketArchive, tc.key, []byte(tc.val)) }); err != nil {
				t.Fatal(err)
			}
			e, err = New(Config{IAllocator: testIAllocators{}, Executors: lu.DefaultExecutors(), Model: model, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Stop(context.Background())
			var id int64
			for _, c := range tc.key {
				id = id*10 + int64(c-'0')
			}
			j, ok, err := e.Lookup(context.Background(), id)
			if err == nil || ok || j != nil || !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("Lookup(%d) = %v, %v, %v; want an error wrapping store.ErrCorrupt", id, j, ok, err)
			}
			if _, ok := e.Get(id); ok {
				t.Errorf("Get(%d) found a damaged job", id)
			}
			// A job depending on it fails saying so (not "not found").
			op := opOf(delay(0))
			op.GetTestDelay().Depends = []*rapiv2.JobDependency{dep(id)}
			e.Start()
			jid, err := e.Submit(context.Background(), []*rapiv2.OpCode{op}, SubmitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf(`[["OpExecError",["Dependency error: Job %d cannot be read"]]]`, id)
			if j := waitJob(t, e, jid); j.Status != StatusError || jsonOf(t, j.OpResult) != want {
				t.Errorf("dependent job: %s %s, want error %s", j.Status, jsonOf(t, j.OpResult), want)
			}
		})
	}
}

// FuzzDecodeStored: no stored bytes make decoding, or the snapshot of what
// decoded, panic.
func FuzzDecodeStored(f *testing.F) {
	v := newEnv(f, 0, nil)
	id := v.submit(tagsSet(kCluster, "", "a"), tagsSet(kCluster, "", "b"))
	b, err := encodeRecord(recordOf(v.e, id))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"id":1,"ops":[""],"opstatus":["queued"],"opresult":[null],"oplog":[[]],"opstart":[null],"opexec":[null],"opend":[null],"oppriority":[0],"summary":["x"]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := decodeStored(BucketArchive, jobKey(id), data)
		if err != nil {
			return
		}
		s, err := archivedSnapshot(r)
		if err != nil {
			t.Fatalf("decoded, but no snapshot: %v", err)
		}
		_ = s.Status
	})
}

// recordOf copies the record of job id.
func recordOf(e *Engine, id int64) *record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.jobs[id].rec.clone()
}

// badOp replaces the first opcode of an encoded record with bytes that are
// no protobuf message.
func badOp(t *testing.T, rec []byte) string {
	var m map[string]any
	if err := json.Unmarshal(rec, &m); err != nil {
		t.Fatal(err)
	}
	m["ops"].([]any)[0] = base64.StdEncoding.EncodeToString([]byte{0xff, 0xff, 0xff, 0xff})
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
