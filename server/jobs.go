package server

import (
	"context"
	"fmt"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// jobService answers job reads. The job engine is not part of this server
// yet, so the queue is always empty: every job id is unknown, which Ganeti
// answers with a job whose fields are all null.
type jobService struct {
	rapiv2.UnimplementedJobServiceServer
	s *Services
}

func (j *jobService) ListJobs(context.Context, *rapiv2.ListJobsRequest) (*rapiv2.ListJobsResponse, error) {
	return &rapiv2.ListJobsResponse{}, nil
}

func (j *jobService) GetJob(_ context.Context, req *rapiv2.GetJobRequest) (*rapiv2.Job, error) {
	return &rapiv2.Job{Id: req.GetJobId()}, nil
}

func (j *jobService) CancelJob(_ context.Context, req *rapiv2.CancelJobRequest) (*rapiv2.CancelJobResponse, error) {
	return &rapiv2.CancelJobResponse{Success: false, Message: fmt.Sprintf("Job %d not found in queue", req.GetJobId())}, nil
}
