package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// Buckets of the job engine (the cluster model uses others).
const (
	BucketJobs    = "jobs"
	BucketArchive = "jobs-archive"
	BucketQueue   = "jobqueue"
)

// keyNextID holds the next job id (decimal) in BucketQueue.
const keyNextID = "next_id"

// jobKey is the key of a job: its id zero-padded, so that keys sort by id.
func jobKey(id int64) string { return fmt.Sprintf("%020d", id) }

func encodeRecord(r *record) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("jobs: encode job %d: %w", r.ID, err)
	}
	return b, nil
}

func decodeRecord(b []byte) (*record, error) {
	var r record
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("jobs: decode job: %w", err)
	}
	for i, v := range r.OpResult {
		r.OpResult[i] = backend.NormalizeNumbers(v)
	}
	n := len(r.Ops)
	if n == 0 {
		return nil, fmt.Errorf("jobs: job %d: no opcodes", r.ID)
	}
	for i, st := range r.OpStatus {
		switch st {
		case StatusQueued, StatusWaiting, StatusCanceling, StatusRunning, StatusCanceled, StatusSuccess, StatusError:
		default:
			return nil, fmt.Errorf("jobs: job %d: opcode %d: unknown status %q", r.ID, i, st)
		}
	}
	if len(r.OpStatus) != n || len(r.OpResult) != n || len(r.OpLog) != n || len(r.OpStart) != n ||
		len(r.OpExec) != n || len(r.OpEnd) != n || len(r.OpPriority) != n || len(r.Summary) != n {
		return nil, fmt.Errorf("jobs: job %d: inconsistent record", r.ID)
	}
	if len(r.Deps) != n {
		r.Deps = make([][]dependency, n)
	}
	for i := range r.OpLog {
		if r.OpLog[i] == nil {
			r.OpLog[i] = []LogEntry{}
		}
	}
	return &r, nil
}

// decodeOps decodes the opcodes of a record.
func decodeOps(r *record) ([]*rapiv2.OpCode, error) {
	ops := make([]*rapiv2.OpCode, len(r.Ops))
	for i, b := range r.Ops {
		op := &rapiv2.OpCode{}
		if err := proto.Unmarshal(b, op); err != nil {
			return nil, fmt.Errorf("jobs: job %d: opcode %d: %w", r.ID, i, err)
		}
		ops[i] = op
	}
	return ops, nil
}

// loadAll reads the next id and every live job; a record that cannot be
// decoded refuses the start, naming it. The next id is also kept above
// every archived job's id (their keys only are read: decoding the whole
// archive at every start would cost about 13 µs per archived job; the
// store verifies their checksums at open, and an archived record that
// does not decode is an error when read, see loadArchived).
func loadAll(ctx context.Context, st store.Store) (next int64, recs []*record, err error) {
	err = st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(BucketQueue, keyNextID)
		if err != nil {
			return err
		}
		if b != nil {
			if next, err = strconv.ParseInt(string(b), 10, 64); err != nil || next < 1 {
				return store.Corrupt(BucketQueue, keyNextID, fmt.Errorf("bad next job id %q", b))
			}
		}
		if err := tx.ForEach(BucketJobs, func(key string, val []byte) error {
			r, err := decodeStored(BucketJobs, key, val)
			if err != nil {
				return err
			}
			recs = append(recs, r)
			return nil
		}); err != nil {
			return err
		}
		return tx.ForEach(BucketArchive, func(key string, _ []byte) error {
			id, err := strconv.ParseInt(key, 10, 64)
			if err != nil || jobKey(id) != key {
				return store.Corrupt(BucketArchive, key, errors.New("not a job id"))
			}
			next = max(next, id+1)
			return nil
		})
	})
	return next, recs, err
}

// decodeStored decodes the job record stored under bucket/key; a record
// that does not decode, or is not the job its key names, is a
// store.CorruptError.
func decodeStored(bucket, key string, val []byte) (*record, error) {
	r, err := decodeRecord(val)
	if err != nil {
		return nil, store.Corrupt(bucket, key, err)
	}
	if jobKey(r.ID) != key {
		return nil, store.Corrupt(bucket, key, fmt.Errorf("holds job %d", r.ID))
	}
	ops, err := decodeOps(r)
	if err != nil {
		return nil, store.Corrupt(bucket, key, err)
	}
	for i, op := range ops {
		if opMember(op) == nil {
			return nil, store.Corrupt(bucket, key, fmt.Errorf("opcode %d has no opcode set", i))
		}
	}
	return r, nil
}

// loadArchived reads one archived job (nil when absent). A record that
// cannot be read is an error wrapping store.ErrCorrupt, never a job.
func loadArchived(ctx context.Context, st store.Store, id int64) (*record, error) {
	var r *record
	err := st.View(ctx, func(tx store.Tx) error {
		key := jobKey(id)
		b, err := tx.Get(BucketArchive, key)
		if err != nil || b == nil {
			return err
		}
		r, err = decodeStored(BucketArchive, key, b)
		return err
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}
