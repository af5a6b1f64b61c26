package boltstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// The check of a database file before bbolt maps it. bbolt trusts its
// pages: a damaged page makes it panic or read outside its memory map
// (a fatal fault, not a recoverable panic), and a damaged value is served
// as it is. Verify reads the file with plain reads instead, and checks
// what bbolt relies on: the meta pages (bbolt's own checksum), every page
// reachable from the newest valid meta (in range, of the right type, used
// once, elements inside their page, keys in order), the freelist (in
// range, no page both free and in use, every page either), the bucket
// layout this package writes (top-level buckets holding plain values),
// and, once the store has its format record, every value's checksum.

// On-disk layout of bbolt (format version 2), as bbolt writes it.
const (
	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	elemSize        = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags, pos, ksize, vsize u32
	bucketHeaderLen = 16 // root pgid u64, sequence u64
	metaSize        = 64
	metaSumOffset   = 56 // the meta checksum covers the bytes before it

	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	bucketLeaf   = 0x01

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	noFreelist  = ^uint64(0)

	maxDepth = 64 // far beyond any real tree; bounds the recursion
)

// Report describes a verified database file.
type Report struct {
	PageSize int
	Pages    uint64 // pages in use or free (bbolt's high-water mark)
	Buckets  int
	Keys     int64
	// Checksums tells whether the values carry checksums (false for a
	// store written before they were introduced, or an empty file).
	Checksums bool
	// OldMetaDamaged: the older of the two meta pages is invalid; nothing
	// is lost (the newest is valid) and bbolt rewrites it at the next
	// commit.
	OldMetaDamaged bool
	Duration       time.Duration
}

// DamageError describes a damaged database file. It wraps store.ErrCorrupt.
type DamageError struct {
	Path   string
	Page   int64 // -1 when the damage is not about one page
	Bucket string
	Key    string // printable form of the key, when about one record
	Reason string
}

func (e *DamageError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s is damaged: ", e.Path)
	switch {
	case e.Page >= 0 && e.Bucket != "":
		fmt.Fprintf(&b, "page %d (bucket %q): ", e.Page, e.Bucket)
	case e.Page >= 0:
		fmt.Fprintf(&b, "page %d: ", e.Page)
	case e.Bucket != "" && e.Key != "":
		fmt.Fprintf(&b, "record %s/%s: ", e.Bucket, e.Key)
	case e.Bucket != "":
		fmt.Fprintf(&b, "bucket %q: ", e.Bucket)
	}
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap makes a DamageError an error about damaged data.
func (e *DamageError) Unwrap() error { return store.ErrCorrupt }

// Verify checks the bbolt file at path (see the comment at the top of this
// file). It returns a *DamageError when the file is damaged, another error
// when it cannot be read. A file too short for its two meta pages is
// damaged; an empty file is the caller's business (bbolt initializes it).
func Verify(path string) (Report, error) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return Report{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Report{}, err
	}
	rep, err := verifyReader(f, fi.Size(), path)
	rep.Duration = time.Since(start)
	return rep, err
}

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64
	txid     uint64
}

// parseMeta decodes the meta in a meta page's bytes and validates it; its
// fields are decoded (unverified) even when it is invalid.
func parseMeta(pg []byte) (meta, error) {
	if len(pg) < pageHeaderSize+metaSize {
		return meta{}, errors.New("short meta page")
	}
	m := pg[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.LittleEndian
	mt := meta{
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		hwm:      le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}
	if le.Uint32(m[0:]) != boltMagic {
		return mt, errors.New("not a bbolt meta page (bad magic)")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return mt, fmt.Errorf("bbolt format version %d, this server reads %d", v, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaSumOffset])
	if h.Sum64() != le.Uint64(m[metaSumOffset:]) {
		return mt, errors.New("meta page checksum mismatch")
	}
	return mt, nil
}

func readAt(r io.ReaderAt, off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	got, err := r.ReadAt(b, off)
	if got == n {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// findMetas reads both meta pages, locating the second one as bbolt does
// when the first is unreadable.
func findMetas(r io.ReaderAt, size int64) (m0, m1 meta, err0, err1 error) {
	const probe = 4096
	read := func(off int64) (meta, error) {
		n := int64(probe)
		if size-off < n {
			n = size - off
		}
		if n < pageHeaderSize+metaSize {
			return meta{}, errors.New("missing (the file is too short)")
		}
		b, err := readAt(r, off, int(n))
		if err != nil {
			return meta{}, err
		}
		return parseMeta(b)
	}
	m0, err0 = read(0)
	if err0 == nil {
		m1, err1 = read(int64(m0.pageSize))
		return
	}
	err1 = errors.New("not found")
	for i := 0; i <= 14; i++ {
		off := int64(1024) << i
		if off >= size {
			break
		}
		if m, err := read(off); err == nil && int64(m.pageSize) == off {
			return m0, m, err0, nil
		}
	}
	return
}

func verifyReader(r io.ReaderAt, size int64, path string) (Report, error) {
	damage := func(page int64, format string, args ...any) error {
		return &DamageError{Path: path, Page: page, Reason: fmt.Sprintf(format, args...)}
	}
	if size == 0 {
		return Report{}, damage(-1, "the file is empty")
	}
	m0, m1, err0, err1 := findMetas(r, size)
	// bbolt writes the meta pages in turn (transaction t to page t%2) and
	// uses the newest valid one. A meta page is far smaller than a disk
	// sector, so a crash does not leave it half written: an invalid one is
	// damage. Damage to the older one loses nothing (bbolt overwrites it
	// at the next commit); an invalid one that may be the newer (its
	// transaction id, unverified, is not the older one's) may hide the
	// last committed transaction, which bbolt would silently drop.
	var m meta
	var rep Report
	older := func(bad, good meta, n int, err error) error {
		if good.txid > 0 && bad.txid == good.txid-1 {
			rep.OldMetaDamaged = true
			return nil
		}
		return damage(int64(n), "meta page %d is invalid (%v) and may be the newest one: the store could be missing its last committed transaction", n, err)
	}
	switch {
	case err0 != nil && err1 != nil:
		return Report{}, damage(-1, "no valid meta page (meta page 0: %v; meta page 1: %v): not a bbolt file, or both of its headers are damaged", err0, err1)
	case err0 != nil:
		m = m1
		if err := older(m0, m1, 0, err0); err != nil {
			return Report{}, err
		}
	case err1 != nil:
		m = m0
		if err := older(m1, m0, 1, err1); err != nil {
			return Report{}, err
		}
	case m1.txid > m0.txid:
		m = m1
	default:
		m = m0
	}
	ps := int64(m.pageSize)
	if ps < 1024 || ps > 1<<24 || ps&(ps-1) != 0 {
		return Report{}, damage(-1, "the meta page gives an invalid page size %d", ps)
	}
	if m.hwm < 3 {
		return Report{}, damage(-1, "the meta page gives an invalid page count %d", m.hwm)
	}
	if m.hwm > uint64(size/ps) {
		return Report{}, damage(-1, "the file is truncated: it has %d bytes (%d pages of %d bytes), its meta page counts %d pages",
			size, size/ps, ps, m.hwm)
	}
	rep.PageSize, rep.Pages = int(ps), m.hwm
	w := &walker{r: r, ps: ps, hwm: m.hwm, path: path,
		used: make([]bool, m.hwm), freed: make([]bool, m.hwm), rep: &rep}
	w.used[0], w.used[1] = true, true
	if m.freelist != noFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return rep, err
		}
	}
	if err := w.walkRoot(m.root); err != nil {
		return rep, err
	}
	if m.freelist != noFreelist {
		for id := uint64(2); id < m.hwm; id++ {
			if !w.used[id] && !w.freed[id] {
				return rep, damage(int64(id), "neither in use nor free (lost page)")
			}
		}
	}
	return rep, nil
}

type walker struct {
	r     io.ReaderAt
	ps    int64
	hwm   uint64
	path  string
	used  []bool
	freed []bool
	rep   *Report
}

func (w *walker) damage(page uint64, bucket, format string, args ...any) error {
	return &DamageError{Path: w.path, Page: int64(page), Bucket: bucket, Reason: fmt.Sprintf(format, args...)}
}

// page reads page id with its overflow pages and marks them used.
func (w *walker) page(id uint64, bucket string, want ...uint16) ([]byte, uint16, error) {
	if id < 2 || id >= w.hwm {
		return nil, 0, w.damage(id, bucket, "page id out of range [2, %d)", w.hwm)
	}
	head, err := readAt(w.r, int64(id)*w.ps, int(w.ps))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: read page %d: %w", w.path, id, err)
	}
	le := binary.LittleEndian
	if got := le.Uint64(head); got != id {
		return nil, 0, w.damage(id, bucket, "the page says it is page %d", got)
	}
	flags := le.Uint16(head[8:])
	ok := false
	for _, f := range want {
		ok = ok || flags == f
	}
	if !ok {
		return nil, 0, w.damage(id, bucket, "unexpected page type %#x", flags)
	}
	over := uint64(le.Uint32(head[12:]))
	if over >= w.hwm-id {
		return nil, 0, w.damage(id, bucket, "%d overflow pages run past the last page", over)
	}
	for p := id; p <= id+over; p++ {
		switch {
		case w.used[p]:
			return nil, 0, w.damage(p, bucket, "page used twice")
		case w.freed[p]:
			return nil, 0, w.damage(p, bucket, "page both in use and free")
		}
		w.used[p] = true
	}
	if over == 0 {
		return head, flags, nil
	}
	buf, err := readAt(w.r, int64(id)*w.ps, int(int64(over+1)*w.ps))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: read page %d: %w", w.path, id, err)
	}
	return buf, flags, nil
}

func (w *walker) freelist(id uint64) error {
	buf, _, err := w.page(id, "", freelistPage)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	count, first := uint64(le.Uint16(buf[10:])), uint64(pageHeaderSize)
	if count == 0xFFFF {
		count, first = le.Uint64(buf[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (uint64(len(buf))-first)/8 {
		return w.damage(id, "", "freelist of %d entries does not fit its page", count)
	}
	for i := uint64(0); i < count; i++ {
		p := le.Uint64(buf[first+8*i:])
		switch {
		case p < 2 || p >= w.hwm:
			return w.damage(id, "", "freelist entry %d out of range", p)
		case w.freed[p]:
			return w.damage(id, "", "page %d is free twice", p)
		case w.used[p]:
			return w.damage(p, "", "page both in use and free")
		}
		w.freed[p] = true
	}
	return nil
}

// rootEntry is a top-level bucket: its name and its header (plus inline
// page) bytes.
type rootEntry struct {
	name  string
	value []byte
}

// walkRoot walks the tree of top-level buckets, then every bucket.
func (w *walker) walkRoot(root uint64) error {
	var entries []rootEntry
	err := w.tree(root, "", nil, nil, 0, func(_ uint64, flags uint32, k, v []byte) error {
		if flags != bucketLeaf {
			return fmt.Errorf("top-level key %q is not a bucket", k)
		}
		entries = append(entries, rootEntry{string(k), v})
		return nil
	})
	if err != nil {
		return err
	}
	w.rep.Buckets = len(entries)
	// The format record says whether values carry checksums.
	for _, e := range entries {
		if e.name != metaBucket {
			continue
		}
		found := false
		if err := w.bucket(e, false, func(k, v []byte) error {
			if string(k) != keyFormat {
				return nil
			}
			found = true
			if _, err := unseal(e.name, k, v); err != nil {
				return err
			}
			return nil
		}); err != nil {
			return err
		}
		if !found {
			return &DamageError{Path: w.path, Page: -1, Bucket: metaBucket, Reason: "the format record is missing"}
		}
		w.rep.Checksums = true
	}
	for _, e := range entries {
		if e.name == metaBucket {
			continue
		}
		if err := w.bucket(e, w.rep.Checksums, nil); err != nil {
			return err
		}
	}
	return nil
}

// bucket walks one top-level bucket: plain values only, each checked
// against its checksum when sums is set; fn (if not nil) sees every
// record.
func (w *walker) bucket(e rootEntry, sums bool, fn func(k, v []byte) error) error {
	le := binary.LittleEndian
	if len(e.value) < bucketHeaderLen {
		return &DamageError{Path: w.path, Page: -1, Bucket: e.name, Reason: "short bucket header"}
	}
	visit := func(_ uint64, flags uint32, k, v []byte) error {
		if flags != 0 {
			return fmt.Errorf("key %q is a nested bucket where a value belongs", k)
		}
		w.rep.Keys++
		if sums {
			if _, err := unseal(e.name, k, v); err != nil {
				return &DamageError{Path: w.path, Page: -1, Bucket: e.name, Key: printable(k), Reason: err.Error()}
			}
		}
		if fn != nil {
			return fn(k, v)
		}
		return nil
	}
	root := le.Uint64(e.value)
	if root != 0 {
		return w.tree(root, e.name, nil, nil, 0, visit)
	}
	// An inline bucket: a leaf page inside the value.
	inline := e.value[bucketHeaderLen:]
	if len(inline) < pageHeaderSize || le.Uint16(inline[8:]) != leafPage {
		return &DamageError{Path: w.path, Page: -1, Bucket: e.name, Reason: "damaged inline bucket"}
	}
	if err := w.leaf(inline, nil, nil, 0, visit); err != nil {
		if de, ok := errors.AsType[*DamageError](err); ok {
			return de
		}
		return &DamageError{Path: w.path, Page: -1, Bucket: e.name, Reason: "inline bucket: " + err.Error()}
	}
	return nil
}

// tree walks the B+tree rooted at page id, whose keys must lie in
// [lo, hi) (nil: unbounded), calling fn for every leaf element in key
// order.
func (w *walker) tree(id uint64, bucket string, lo, hi []byte, depth int, fn func(page uint64, flags uint32, k, v []byte) error) error {
	if depth > maxDepth {
		return w.damage(id, bucket, "tree deeper than %d levels", maxDepth)
	}
	buf, flags, err := w.page(id, bucket, branchPage, leafPage)
	if err != nil {
		return err
	}
	if flags == leafPage {
		if err := w.leaf(buf, lo, hi, id, fn); err != nil {
			if _, ok := errors.AsType[*DamageError](err); ok {
				return err
			}
			return w.damage(id, bucket, "%v", err)
		}
		return nil
	}
	le := binary.LittleEndian
	count := int(le.Uint16(buf[10:]))
	if count == 0 {
		return w.damage(id, bucket, "empty branch page")
	}
	keys := make([][]byte, count)
	kids := make([]uint64, count)
	data := uint64(pageHeaderSize + count*elemSize) // bbolt packs the keys after the elements
	for i := range count {
		off := pageHeaderSize + i*elemSize
		if off+elemSize > len(buf) {
			return w.damage(id, bucket, "%d elements do not fit the page", count)
		}
		pos, ksize := uint64(le.Uint32(buf[off:])), uint64(le.Uint32(buf[off+4:]))
		start := uint64(off) + pos
		if start != data {
			return w.damage(id, bucket, "element %d: key at offset %d, where bbolt puts it at %d", i, start, data)
		}
		data += ksize
		if start+ksize > uint64(len(buf)) {
			return w.damage(id, bucket, "element %d: key outside the page", i)
		}
		keys[i], kids[i] = buf[start:start+ksize], le.Uint64(buf[off+8:])
		if err := keyOrder(keys[i], lo, hi, i, keys); err != nil {
			return w.damage(id, bucket, "element %d: %v", i, err)
		}
	}
	for i := range count {
		next := hi
		if i+1 < count {
			next = keys[i+1]
		}
		if err := w.tree(kids[i], bucket, keys[i], next, depth+1, fn); err != nil {
			return err
		}
	}
	return nil
}

// keyOrder checks that keys[i] lies in [lo, hi) and above keys[i-1].
func keyOrder(k, lo, hi []byte, i int, keys [][]byte) error {
	switch {
	case lo != nil && bytes.Compare(k, lo) < 0:
		return errors.New("key below its parent's key")
	case hi != nil && bytes.Compare(k, hi) >= 0:
		return errors.New("key not below the next parent key")
	case i > 0 && bytes.Compare(keys[i-1], k) >= 0:
		return errors.New("keys out of order")
	}
	return nil
}

// leaf checks the elements of a leaf page (buf starts at its header) and
// calls fn for each.
func (w *walker) leaf(buf []byte, lo, hi []byte, id uint64, fn func(page uint64, flags uint32, k, v []byte) error) error {
	le := binary.LittleEndian
	count := int(le.Uint16(buf[10:]))
	keys := make([][]byte, count)
	data := uint64(pageHeaderSize + count*elemSize) // bbolt packs keys and values after the elements
	for i := range count {
		off := pageHeaderSize + i*elemSize
		if off+elemSize > len(buf) {
			return fmt.Errorf("%d elements do not fit the page", count)
		}
		flags := le.Uint32(buf[off:])
		pos, ksize, vsize := uint64(le.Uint32(buf[off+4:])), uint64(le.Uint32(buf[off+8:])), uint64(le.Uint32(buf[off+12:]))
		start := uint64(off) + pos
		if start != data {
			return fmt.Errorf("element %d: data at offset %d, where bbolt puts it at %d", i, start, data)
		}
		data += ksize + vsize
		if start+ksize+vsize > uint64(len(buf)) {
			return fmt.Errorf("element %d: key or value outside the page", i)
		}
		if flags&^bucketLeaf != 0 {
			return fmt.Errorf("element %d: invalid flags %#x", i, flags)
		}
		keys[i] = buf[start : start+ksize]
		if ksize == 0 {
			return fmt.Errorf("element %d: empty key", i)
		}
		if err := keyOrder(keys[i], lo, hi, i, keys); err != nil {
			return fmt.Errorf("element %d: %v", i, err)
		}
		if err := fn(id, flags, keys[i], buf[start+ksize:start+ksize+vsize]); err != nil {
			return err
		}
	}
	return nil
}

// printable renders a key for a message.
func printable(k []byte) string {
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("%q", k)
		}
	}
	return string(k)
}
