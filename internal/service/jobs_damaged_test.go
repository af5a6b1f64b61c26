package service_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/jobs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
)

// TestDamagedArchivedJob: an archived job whose record does not decode is
// an internal error on every read path (GetJob, WaitJobChange, WatchJob),
// with no Go error text: never an empty job, never "not found".
func TestDamagedArchivedJob(t *testing.T) {
	conn, _, model := newJobConn(t, true)
	const id = 77
	if err := model.Store().Update(context.Background(), func(tx store.Tx) error {
		return tx.Put(jobs.BucketArchive, "00000000000000000077", []byte(`{"id":77,"ops":"not a list"}`))
	}); err != nil {
		t.Fatal(err)
	}
	js := rapiv2.NewJobServiceClient(conn)
	ctx := context.Background()
	check := func(rpc string, err error) {
		t.Helper()
		st, _ := status.FromError(err)
		if st.Code() != codes.Internal || st.Message() != "internal error" {
			t.Errorf("%s: %v, want Internal \"internal error\"", rpc, err)
		}
		if strings.Contains(st.Message(), "json") || strings.Contains(st.Message(), "jobs:") {
			t.Errorf("%s: Go error text reached the client: %q", rpc, st.Message())
		}
	}
	job, err := js.GetJob(ctx, &rapiv2.GetJobRequest{JobId: id})
	if err == nil {
		t.Errorf("GetJob served %v", job)
	}
	check("GetJob", err)
	_, err = js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: id, Fields: []string{"status"}, TimeoutSeconds: 1})
	check("WaitJobChange", err)
	stream, err := js.WatchJob(ctx, &rapiv2.WatchJobRequest{JobId: id})
	if err == nil {
		_, err = stream.Recv()
	}
	check("WatchJob", err)

	// An unknown job is still what it was.
	if _, err := js.WaitJobChange(ctx, &rapiv2.WaitJobChangeRequest{JobId: 78, Fields: []string{"status"}, TimeoutSeconds: 1}); status.Code(err) != codes.NotFound {
		t.Errorf("WaitJobChange of an unknown job: %v", err)
	}
}
