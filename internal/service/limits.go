package service

import (
	"context"

	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/membudget"
)

// Limits bound what one query (/2/query, QueryService) may make the
// server build. Ganeti has none of them; see the README's "Limits and
// failure behaviour".
type Limits struct {
	// MaxQueryFields is the largest number of fields a query, a field
	// definitions request or a job wait may name (duplicates count);
	// default DefaultMaxQueryFields. Beyond: 400 / InvalidArgument.
	MaxQueryFields int
	// MaxQueryResultBytes is the largest query result, as the estimated
	// length of its JSON encoding, measured before it is built; default
	// DefaultMaxQueryResultBytes. Beyond: 413 / ResourceExhausted.
	MaxQueryResultBytes int64
	// Budget, when set, is what the query results being built and sent at
	// once may take: each reserves QueryMemoryFactor bytes per byte of its
	// estimate until its request has been answered.
	Budget *membudget.MemoryBudget
}

// Defaults and fixed limits of queries.
const (
	// DefaultMaxQueryFields lets a query name every field of the largest
	// resource (instance: 292) three times over.
	DefaultMaxQueryFields = 1024
	// MaxFieldNameLength bounds one field name (the longest real one has
	// 33 bytes); an unknown name is echoed back three times.
	MaxFieldNameLength = 256
	// DefaultMaxQueryResultBytes is about every field of 2,500 instances.
	DefaultMaxQueryResultBytes = 8 << 20
	// QueryMemoryFactor is the memory a query result takes per byte of its
	// JSON encoding, measured on the legacy path (cells, the proto message,
	// its encoding, the gateway's decoded copy and the JSON answer).
	QueryMemoryFactor = 24
	// RequestMemoryFactor is the memory a query request takes per byte of
	// its body while it is decoded and held (the gateway's proto message,
	// its encoding, the service's copy, the filter as values and as a
	// tree); a query body or message of RequestMemoryMin bytes or more
	// reserves it in the request budget before it is decoded.
	RequestMemoryFactor = 40
	RequestMemoryMin    = 16 << 10
)

func (l *Limits) setDefaults() {
	if l.MaxQueryFields <= 0 {
		l.MaxQueryFields = DefaultMaxQueryFields
	}
	if l.MaxQueryResultBytes <= 0 {
		l.MaxQueryResultBytes = DefaultMaxQueryResultBytes
	}
}

// checkFields applies the limits on the field names of a request.
func (l *Limits) checkFields(fields []string) error {
	if len(fields) > l.MaxQueryFields {
		return errs.BadRequest("Too many fields: %d, at most %d", len(fields), l.MaxQueryFields)
	}
	for _, f := range fields {
		if len(f) > MaxFieldNameLength {
			return errs.BadRequest("Field name longer than %d bytes", MaxFieldNameLength)
		}
	}
	return nil
}

// query runs a query within the limits. release gives back the memory
// reserved for the result when the request has no Hold (else the Hold
// does, once the answer is sent).
func (s *Services) query(ctx context.Context, resource string, fields []string, filter any) (_ *backend.QueryResult, release func(), err error) {
	lim := &s.cfg.Limits
	if err := lim.checkFields(fields); err != nil {
		return nil, nil, err
	}
	release = func() {}
	res, err := s.cfg.Backend.Query(ctx, resource, fields, filter, backend.QueryLimits{
		MaxBytes: lim.MaxQueryResultBytes,
		Admit: func(estimate int64) error {
			r, err := lim.Budget.Reserve(ctx, estimate*QueryMemoryFactor)
			if err == nil {
				release = r
			}
			return err
		},
	})
	if err != nil {
		release()
		return nil, nil, err
	}
	return res, release, nil
}
