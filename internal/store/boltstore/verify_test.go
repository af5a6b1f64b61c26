package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// records is the content of a store: bucket -> key -> value.
type records map[string]map[string]string

// sampleRecords has inline and non-inline buckets, values spanning
// overflow pages and enough keys for branch pages.
func sampleRecords(keys int) records {
	r := records{
		"cluster": {"config": `{"name":"cluster.example.com"}`},
		"tiny":    {"a": "1", "b": ""},
		"big":     {"blob": strings.Repeat("0123456789abcdef", 1500)},
		"jobs":    {},
	}
	for i := range keys {
		r["jobs"][fmt.Sprintf("%020d", i)] = fmt.Sprintf(`{"id":%d,"ops":["OP_TAGS_SET"],"status":"success","pad":%q}`, i, strings.Repeat("x", i%200))
	}
	return r
}

// writeStore creates path with recs in one transaction (so that every
// value is on disk exactly once) plus earlier transactions whose pages are
// then free.
func writeStore(t testing.TB, path string, recs records) {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Churn: pages that end up in the freelist.
	for i := range 3 {
		if err := s.Update(context.Background(), func(tx store.Tx) error {
			return tx.Put("scratch", fmt.Sprint(i), bytes.Repeat([]byte{'s'}, 3000))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(context.Background(), func(tx store.Tx) error {
		for i := range 3 {
			if err := tx.Delete("scratch", fmt.Sprint(i)); err != nil {
				return err
			}
		}
		for _, b := range slices.Sorted(maps.Keys(recs)) {
			for k, v := range recs[b] {
				if err := tx.Put(b, k, []byte(v)); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every bucket of recs through the store.
func readAll(s *Store, recs records) (records, error) {
	got := records{}
	err := s.View(context.Background(), func(tx store.Tx) error {
		for b := range recs {
			got[b] = map[string]string{}
			if err := tx.ForEach(b, func(k string, v []byte) error {
				got[b][k] = string(v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return got, err
}

func equalRecords(a, b records) bool {
	for k := range a {
		if !maps.Equal(a[k], b[k]) {
			return false
		}
	}
	return len(a) == len(b)
}

// pageOf returns the page size and the ids of the pages of the file with
// the given flags, in use or not.
func pagesOf(t testing.TB, data []byte, flags uint16) []int {
	t.Helper()
	const ps = 4096
	var out []int
	for id := 2; (id+1)*ps <= len(data); id++ {
		p := data[id*ps:]
		if binary.LittleEndian.Uint64(p) == uint64(id) && binary.LittleEndian.Uint16(p[8:]) == flags {
			out = append(out, id)
		}
	}
	return out
}

// jobsLeaf returns the id of a leaf page of bucket jobs (whose keys are
// zero-padded numbers; writeStore writes them once, so that every such
// page is in use).
func jobsLeaf(t testing.TB, data []byte) int {
	t.Helper()
	const ps = 4096
	le := binary.LittleEndian
	for _, id := range pagesOf(t, data, leafPage) {
		p := data[id*ps : (id+1)*ps]
		if le.Uint16(p[10:]) < 2 {
			continue
		}
		pos, ksize := le.Uint32(p[16+4:]), le.Uint32(p[16+8:])
		if k := p[16+pos : 16+pos+ksize]; len(k) == 20 && bytes.HasPrefix(k, []byte("0000000000")) {
			return id
		}
	}
	t.Fatal("no leaf page of bucket jobs")
	return 0
}

// currentFreelist returns the freelist page of the newest meta page.
func currentFreelist(t testing.TB, data []byte) int {
	t.Helper()
	m0, err0 := parseMeta(data)
	m1, err1 := parseMeta(data[4096:])
	if err0 != nil || err1 != nil {
		t.Fatal(err0, err1)
	}
	if m1.txid > m0.txid {
		m0 = m1
	}
	return int(m0.freelist)
}

// TestVerifyDamage: each kind of damage is refused at open with an error
// that names the file and wraps store.ErrCorrupt, and a healthy file with
// the same content opens and reads back unchanged.
func TestVerifyDamage(t *testing.T) {
	dir := t.TempDir()
	golden := filepath.Join(dir, "golden.db")
	recs := sampleRecords(2000)
	writeStore(t, golden, recs)
	orig, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	leaf := jobsLeaf(t, orig)
	le := binary.LittleEndian
	const ps = 4096
	value := []byte(`"id":1234,`)
	cases := []struct {
		name   string
		damage func(b []byte) []byte
		want   string // in the error
	}{
		{"healthy", func(b []byte) []byte { return b }, ""},
		{"garbage", func(b []byte) []byte { return bytes.Repeat([]byte("not a database "), 2000) }, "no valid meta page"},
		{"short garbage", func(b []byte) []byte { return []byte("x") }, "no valid meta page"},
		{"truncated to a third", func(b []byte) []byte { return b[:len(b)/3/ps*ps] }, "truncated"},
		{"truncated mid-page", func(b []byte) []byte { return b[:len(b)/2+100] }, "truncated"},
		{"both meta pages", func(b []byte) []byte { b[16+40]++; b[ps+16+40]++; return b }, "no valid meta page"},
		{"a value byte", func(b []byte) []byte {
			i := bytes.Index(b, value)
			if i < 0 || bytes.Contains(b[i+1:], value) {
				t.Fatalf("value %s not on disk exactly once", value)
			}
			b[i+len(value)-2] = '5' // "id":1235,
			return b
		}, "is damaged: record jobs/00000000000000001234: checksum mismatch"},
		{"a key byte", func(b []byte) []byte {
			k := []byte("00000000000000001234")
			i := bytes.Index(b, k)
			b[i+19] = '3'
			return b
		}, "damaged"},
		{"leaf page type", func(b []byte) []byte { b[leaf*ps+8] = 0x04; return b }, fmt.Sprintf("page %d (bucket \"jobs\"): unexpected page type", leaf)},
		{"leaf page id", func(b []byte) []byte { b[leaf*ps]++; return b }, "the page says it is page"},
		{"leaf element count", func(b []byte) []byte { le.PutUint16(b[leaf*ps+10:], 0xFFF0); return b }, fmt.Sprintf("page %d (bucket \"jobs\")", leaf)},
		{"leaf element offset", func(b []byte) []byte { le.PutUint32(b[leaf*ps+16+4:], 1<<30); return b }, "element 0: data at offset"},
		{"leaf element dropped", func(b []byte) []byte { le.PutUint16(b[leaf*ps+10:], le.Uint16(b[leaf*ps+10:])-1); return b }, "element 0: data at offset"},
		{"leaf value size", func(b []byte) []byte { le.PutUint32(b[leaf*ps+16+12:], le.Uint32(b[leaf*ps+16+12:])-1); return b }, "checksum mismatch"},
		{"leaf element flags", func(b []byte) []byte { b[leaf*ps+16] = 1; return b }, "nested bucket where a value belongs"},
		{"leaf overflow", func(b []byte) []byte { le.PutUint32(b[leaf*ps+12:], 1); return b }, "page"},
		{"leaf zeroed", func(b []byte) []byte { clear(b[leaf*ps : (leaf+1)*ps]); return b }, fmt.Sprintf("page %d", leaf)},
		{"freelist entry", func(b []byte) []byte {
			id := currentFreelist(t, b)
			if le.Uint16(b[id*ps+10:]) == 0 {
				t.Fatal("empty freelist")
			}
			le.PutUint64(b[id*ps+16:], 1<<40)
			return b
		}, "freelist entry 1099511627776 out of range"},
		{"freelist entry in use", func(b []byte) []byte {
			id := currentFreelist(t, b)
			le.PutUint64(b[id*ps+16:], uint64(leaf))
			return b
		}, "both in use and free"},
		{"freelist entry dropped", func(b []byte) []byte {
			id := currentFreelist(t, b)
			le.PutUint16(b[id*ps+10:], le.Uint16(b[id*ps+10:])-1)
			return b
		}, "neither in use nor free"},
		{"older meta page", func(b []byte) []byte {
			m0, _ := parseMeta(b)
			m1, _ := parseMeta(b[ps:])
			if m0.txid < m1.txid {
				b[16+20]++ // its root, not its txid
			} else {
				b[ps+16+20]++
			}
			return b
		}, ""},
		{"newest meta page", func(b []byte) []byte {
			m0, _ := parseMeta(b)
			m1, _ := parseMeta(b[ps:])
			if m0.txid > m1.txid {
				b[16+20]++
			} else {
				b[ps+16+20]++
			}
			return b
		}, "may be the newest one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, tc.damage(bytes.Clone(orig)), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(path)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer s.Close()
				got, err := readAll(s, recs)
				if err != nil || !equalRecords(got, recs) {
					t.Fatalf("read back: %v (equal %v)", err, equalRecords(got, recs))
				}
				if rep := s.Info().Verify; !rep.Checksums || rep.Keys < 2000 || rep.OldMetaDamaged != (tc.name == "older meta page") {
					t.Errorf("report %+v", rep)
				}
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("a damaged file was opened")
			}
			if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want store.ErrCorrupt, the path and %q", err, tc.want)
			}
			// Open never changes a file it refuses.
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tc.damage(bytes.Clone(orig))) {
				t.Error("the refused file was changed")
			}
		})
	}
}

// TestVerifyEveryByte flips bytes all over a small store, one at a time:
// Open either refuses the file or serves exactly the original records
// (damage in free space or in the older meta page changes nothing), and
// never panics.
func TestVerifyEveryByte(t *testing.T) {
	debug.SetPanicOnFault(true)
	dir := t.TempDir()
	golden := filepath.Join(dir, "golden.db")
	recs := records{"cluster": {"config": `{"name":"c"}`}, "big": {"b": strings.Repeat("x", 5000)}, "jobs": {}}
	for i := range 60 {
		recs["jobs"][fmt.Sprintf("%020d", i)] = fmt.Sprintf(`{"id":%d,"status":"success"}`, i)
	}
	writeStore(t, golden, recs)
	orig, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	// Every byte of the page headers, meta pages and first elements (the
	// first head bytes of each page); every stride-th byte elsewhere.
	stride, head := 23, 80
	if testing.Short() || raceEnabled { // a flip costs ~3 ms under -race
		stride, head = 97, 48
	}
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	flip := func(i int) {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt([]byte{orig[i] ^ 0x20}, int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(i int) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(orig); err != nil {
			t.Fatal(err)
		}
	}
	refused, served := 0, 0
	for i := 0; i < len(orig); i++ {
		if i%4096 >= head && i%stride != 0 {
			continue
		}
		flip(i)
		s, err := Open(path)
		if err != nil {
			refused++
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("byte %d: error %v is not about damage", i, err)
			}
			restore(i)
			continue
		}
		got, err := readAll(s, recs)
		s.Close()
		restore(i) // Open may have written (the freelist, a new meta)
		if err != nil {
			refused++
			continue
		}
		served++
		if !equalRecords(got, recs) {
			t.Fatalf("byte %d (page %d, offset %d): changed records served", i, i/4096, i%4096)
		}
	}
	t.Logf("%d bytes of %d flipped: %d refused, %d served unchanged", refused+served, len(orig), refused, served)
	if refused == 0 || served == 0 {
		t.Error("expected both outcomes")
	}
}

// TestUpgradeAddsChecksums: a store written before checksums existed (no
// format record, plain values) gets them at its first open, keeps its
// values, and verifies with checksums afterwards; one whose format record
// was lost while its values are sealed is refused, not sealed twice.
func TestUpgradeAddsChecksums(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for i := range 500 {
			b, err := tx.CreateBucketIfNotExists([]byte("jobs"))
			if err != nil {
				return err
			}
			if err := b.Put(fmt.Appendf(nil, "%020d", i), fmt.Appendf(nil, `{"id":%d}`, i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); info.Upgraded != 500 || info.Verify.Checksums {
		t.Errorf("info %+v", info)
	}
	var v []byte
	_ = s.View(context.Background(), func(tx store.Tx) error { v, err = tx.Get("jobs", fmt.Sprintf("%020d", 7)); return err })
	if err != nil || string(v) != `{"id":7}` {
		t.Errorf("Get = %q, %v", v, err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); info.Upgraded != 0 || !info.Verify.Checksums || info.Verify.Keys != 501 {
		t.Errorf("info after the upgrade %+v", info)
	}
	s.Close()

	// Lose the format record (bbolt directly): values stay sealed.
	db, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(metaBucket)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("sealed values without a format record were accepted")
	} else if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "format record is missing") {
		t.Errorf("error %v", err)
	}
}

// TestReadDetectsDamage: a value damaged while the store is open is an
// error naming the record (store.CorruptError), never data.
func TestReadDetectsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := []byte(`{"id":42,"status":"success"}`)
	if err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("jobs-archive", "42", val) }); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	i := bytes.Index(data, val)
	if i < 0 {
		t.Fatal("value not found on disk")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("error  "), int64(i+bytes.Index(val, []byte("success")))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for name, read := range map[string]func(tx store.Tx) error{
		"Get": func(tx store.Tx) error { _, err := tx.Get("jobs-archive", "42"); return err },
		"ForEach": func(tx store.Tx) error {
			return tx.ForEach("jobs-archive", func(string, []byte) error { return nil })
		},
	} {
		err := s.View(context.Background(), read)
		var ce *store.CorruptError
		if !errors.As(err, &ce) || ce.Bucket != "jobs-archive" || ce.Key != "42" || !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: %v, want a CorruptError for jobs-archive/42", name, err)
		}
	}
}

func TestReservedBucket(t *testing.T) {
	s, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Update(context.Background(), func(tx store.Tx) error { return tx.Put(metaBucket, keyFormat, []byte("x")) })
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("Put in the reserved bucket: %v", err)
	}
	if b, err := s.Buckets(); err != nil || len(b) != 0 {
		t.Errorf("Buckets of a new store = %v, %v", b, err)
	}
}

// FuzzOpen: no file makes Open (or reading what it opened) panic or fault.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	for i, n := range []int{0, 3, 40} {
		p := filepath.Join(dir, fmt.Sprint(i))
		writeStore(f, p, sampleRecords(n))
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		debug.SetPanicOnFault(true)
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path)
		if err != nil {
			return
		}
		defer s.Close()
		names, err := s.Buckets()
		if err != nil {
			t.Fatal(err)
		}
		recs := records{}
		for _, n := range names {
			recs[n] = nil
		}
		_, _ = readAll(s, recs)
		_ = s.Update(context.Background(), func(tx store.Tx) error { return tx.Put("fuzz", "k", []byte("v")) })
	})
}
