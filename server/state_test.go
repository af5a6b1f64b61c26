package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/boltstore"
)

// startApp runs New on dir (plain HTTP, logs into the returned buffer).
func startApp(t *testing.T, dir string, reinit bool) (*App, *bytes.Buffer, error) {
	t.Helper()
	var logs bytes.Buffer
	a, err := New(context.Background(), Config{
		DataDir: dir, Insecure: true, Reinit: reinit,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	return a, &logs, err
}

// usedDir is a data dir after a first start and three jobs that ran.
func usedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	a, _, err := startApp(t, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	kind := rapiv2.TagKind_TAG_KIND_CLUSTER
	for _, tag := range []string{"a", "b", "c"} {
		op := &rapiv2.OpCode{Op: &rapiv2.OpCode_TagsSet{TagsSet: &rapiv2.OpTagsSet{Kind: &kind, Tags: []string{tag}}}}
		if _, err := a.jobs.Submit(context.Background(), []*rapiv2.OpCode{op}, jobs.SubmitOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, a.jobs)
	a.Close()
	return dir
}

func waitIdle(t *testing.T, e *jobs.Engine) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, j := range e.List() {
		for !j.Finalized() {
			if time.Now().After(deadline) {
				t.Fatalf("job %d: %s", j.ID, j.Status)
			}
			time.Sleep(5 * time.Millisecond)
			j, _ = e.Get(j.ID)
		}
	}
}

// putRaw writes records with the store API (valid checksums).
func putRaw(t *testing.T, dir string, fn func(tx store.Tx) error) {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// firstKey returns a key of bucket.
func firstKey(t *testing.T, dir, bucket string) string {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(dir, boltstore.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var key string
	_ = st.View(context.Background(), func(tx store.Tx) error {
		return tx.ForEach(bucket, func(k string, _ []byte) error {
			key = k
			return errors.New("stop")
		})
	})
	if key == "" {
		t.Fatalf("bucket %s is empty", bucket)
	}
	return key
}

// TestStoreRefused: a store that is missing, empty or blank in a data dir
// used before, or damaged in any way, refuses the start with an error that
// names the file (and the record) and the way out, creates nothing, and
// leaves the file as it was; --reinit then begins a new cluster and keeps
// the refused file aside, byte for byte. A first start on an empty dir (or
// one with only an operator's users file) works.
func TestStoreRefused(t *testing.T) {
	db := func(dir string) string { return filepath.Join(dir, boltstore.FileName) }
	cases := []struct {
		name  string
		setup func(t *testing.T) string // returns the data dir
		want  []string                  // in the error; nil: the start succeeds
	}{
		{"first start", func(t *testing.T) string { return t.TempDir() }, nil},
		{"first start with an operator's users file", func(t *testing.T) string {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "rapi"), 0o700)
			os.WriteFile(filepath.Join(dir, "rapi", "users"), []byte("alice secret write\n"), 0o600)
			return dir
		}, nil},
		{"restart", usedDir, nil},
		{"restart of a data dir without a marker", func(t *testing.T) string {
			dir := usedDir(t)
			os.Remove(filepath.Join(dir, MarkerFile))
			return dir
		}, nil},
		{"missing", func(t *testing.T) string {
			dir := usedDir(t)
			os.Remove(db(dir))
			return dir
		}, []string{"is missing", "the marker", "--reinit", "GANETI_GATEWAY_REINIT=true", "from a backup"}},
		{"missing, only the generated users file", func(t *testing.T) string {
			dir := usedDir(t)
			for _, f := range []string{boltstore.FileName, MarkerFile, DomainSecretFile} {
				os.Remove(filepath.Join(dir, f))
			}
			return dir
		}, []string{"is missing", "users file", "created by a first start"}},
		{"missing, only the cluster domain secret", func(t *testing.T) string {
			dir := usedDir(t)
			for _, f := range []string{boltstore.FileName, MarkerFile, "rapi"} {
				os.RemoveAll(filepath.Join(dir, f))
			}
			return dir
		}, []string{"is missing", DomainSecretFile}},
		{"empty", func(t *testing.T) string {
			dir := usedDir(t)
			os.Truncate(db(dir), 0)
			return dir
		}, []string{"is empty (0 bytes)", "the marker"}},
		{"blank", func(t *testing.T) string {
			dir := usedDir(t)
			os.Remove(db(dir))
			st, err := boltstore.Open(db(dir))
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			return dir
		}, []string{"holds no data", "the marker"}},
		{"truncated", func(t *testing.T) string {
			dir := usedDir(t)
			fi, _ := os.Stat(db(dir))
			os.Truncate(db(dir), fi.Size()/2+100)
			return dir
		}, []string{"is damaged", "truncated"}},
		{"garbage", func(t *testing.T) string {
			dir := usedDir(t)
			os.WriteFile(db(dir), bytes.Repeat([]byte("garbage!"), 8192), 0o600)
			return dir
		}, []string{"is damaged", "no valid meta page"}},
		{"a flipped byte in a data page", func(t *testing.T) string {
			dir := usedDir(t)
			key := firstKey(t, dir, jobs.BucketJobs)
			var val []byte
			putRaw(t, dir, func(tx store.Tx) error { val, _ = tx.Get(jobs.BucketJobs, key); return nil })
			b, _ := os.ReadFile(db(dir))
			// Every copy of the record (bbolt leaves older ones in free
			// pages): one is the record in use.
			n := 0
			for i := bytes.Index(b, val); i >= 0; i = bytes.Index(b[i+1:], val) + i + 1 {
				b[i+len(val)/2] ^= 0x01
				n++
				if !bytes.Contains(b[i+1:], val) {
					break
				}
			}
			if n == 0 {
				t.Fatal("the job record is not in the file")
			}
			os.WriteFile(db(dir), b, 0o600)
			return dir
		}, []string{"is damaged: record jobs/", "checksum mismatch"}},
		{"a job record that does not decode", func(t *testing.T) string {
			dir := usedDir(t)
			key := firstKey(t, dir, jobs.BucketJobs)
			putRaw(t, dir, func(tx store.Tx) error { return tx.Put(jobs.BucketJobs, key, []byte(`{"id": "one"`)) })
			return dir
		}, []string{"is damaged: record jobs/0000"}},
		{"a job record under another job's key", func(t *testing.T) string {
			dir := usedDir(t)
			key := firstKey(t, dir, jobs.BucketJobs)
			putRaw(t, dir, func(tx store.Tx) error {
				v, _ := tx.Get(jobs.BucketJobs, key)
				return tx.Put(jobs.BucketJobs, "00000000000000000999", v)
			})
			return dir
		}, []string{"record jobs/00000000000000000999", "holds job"}},
		{"an archived job under a key that is no job id", func(t *testing.T) string {
			dir := usedDir(t)
			putRaw(t, dir, func(tx store.Tx) error {
				return tx.Put(jobs.BucketArchive, "0000000000000000000x", []byte(`{"id":2}`))
			})
			return dir
		}, []string{"record jobs-archive/0000000000000000000x", "not a job id"}},
		{"a live job without opcodes", func(t *testing.T) string {
			dir := usedDir(t)
			key := firstKey(t, dir, jobs.BucketJobs)
			putRaw(t, dir, func(tx store.Tx) error {
				return tx.Put(jobs.BucketJobs, key, []byte(`{"id":1,"ops":[],"opstatus":[]}`))
			})
			return dir
		}, []string{"record jobs/00000000000000000001", "no opcodes"}},
		{"a node that does not decode", func(t *testing.T) string {
			dir := usedDir(t)
			key := firstKey(t, dir, cluster.BucketNodes)
			putRaw(t, dir, func(tx store.Tx) error { return tx.Put(cluster.BucketNodes, key, []byte(`[1,2]`)) })
			return dir
		}, []string{"record nodes/"}},
		{"the cluster record lost", func(t *testing.T) string {
			dir := usedDir(t)
			putRaw(t, dir, func(tx store.Tx) error { return tx.Delete(cluster.BucketCluster, "config") })
			return dir
		}, []string{"record cluster/config", "holds cluster objects"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t)
			before, beforeErr := os.ReadFile(db(dir))
			files := listDir(t, dir)
			a, logs, err := startApp(t, dir, false)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				defer a.Close()
				if _, err := os.Stat(filepath.Join(dir, MarkerFile)); err != nil {
					t.Errorf("no marker after a successful start: %v", err)
				}
				return
			}
			if err == nil {
				a.Close()
				t.Fatal("the store was accepted")
			}
			msg := err.Error()
			if !errors.Is(err, ErrStoreRefused) || !strings.Contains(msg, db(dir)) {
				t.Errorf("error %q: want ErrStoreRefused naming %s", msg, db(dir))
			}
			for _, w := range append(tc.want, "--reinit") {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if !strings.Contains(logs.String(), `"msg":"store refused"`) {
				t.Errorf("refusal not logged:\n%s", logs)
			}
			after, afterErr := os.ReadFile(db(dir))
			if !bytes.Equal(before, after) || (beforeErr == nil) != (afterErr == nil) {
				t.Error("the refused store file was changed")
			}
			if got := listDir(t, dir); got != files {
				t.Errorf("a refused start created or removed files:\nbefore %s\nafter  %s", files, got)
			}

			// --reinit begins a new cluster and keeps the old file aside.
			a, logs, err = startApp(t, dir, true)
			if err != nil {
				t.Fatalf("--reinit: %v", err)
			}
			defer a.Close()
			if !strings.Contains(logs.String(), "--reinit: beginning a new cluster") {
				t.Errorf("--reinit not logged:\n%s", logs)
			}
			kept, _ := filepath.Glob(db(dir) + ".reinit-*")
			switch {
			case beforeErr != nil && len(kept) != 0:
				t.Errorf("nothing to keep, but %v", kept)
			case beforeErr == nil && len(kept) != 1:
				t.Errorf("old store kept as %v, want one file", kept)
			case beforeErr == nil:
				if old, _ := os.ReadFile(kept[0]); !bytes.Equal(old, before) {
					t.Error("the kept file differs from the refused store")
				}
			}
			if ids := a.jobs.IDs(); len(ids) != 0 {
				t.Errorf("new cluster has jobs %v", ids)
			}
			a.Close()
			// And the new store is accepted from now on.
			a, _, err = startApp(t, dir, false)
			if err != nil {
				t.Fatalf("restart after --reinit: %v", err)
			}
			a.Close()
		})
	}
}

// TestReinitKeepsHealthyStore: --reinit (say, left in the environment)
// never touches a healthy store.
func TestReinitKeepsHealthyStore(t *testing.T) {
	dir := usedDir(t)
	a, logs, err := startApp(t, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if ids := a.jobs.IDs(); len(ids) != 3 {
		t.Errorf("jobs after --reinit on a healthy store: %v", ids)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "*.reinit-*")); len(kept) != 0 || strings.Contains(logs.String(), "--reinit") {
		t.Errorf("a healthy store was moved aside: %v\n%s", kept, logs)
	}
}

// TestArchivedJobDamagedAtRunTime: an archived job whose record is
// damaged after the start is an error from Lookup (never "not found", never
// a partial job), and GetJob answers codes.Internal through the error
// table (see server tests for the client's view).
func TestArchivedJobDamagedAtRunTime(t *testing.T) {
	dir := usedDir(t)
	a, _, err := startApp(t, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.store.Update(context.Background(), func(tx store.Tx) error {
		return tx.Put(jobs.BucketArchive, "00000000000000000077", []byte(`{"id":77,"ops":"x"}`))
	}); err != nil {
		t.Fatal(err)
	}
	j, ok, err := a.jobs.Lookup(context.Background(), 77)
	if err == nil || j != nil || ok || !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Lookup(77) = %v, %v, %v; want an error wrapping store.ErrCorrupt", j, ok, err)
	}
	if _, ok, err := a.jobs.Lookup(context.Background(), 78); ok || err != nil {
		t.Errorf("Lookup of an unknown job = %v, %v", ok, err)
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	_ = filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	return strings.Join(names, " ")
}
