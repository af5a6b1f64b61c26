package service

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/backend"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// fill converts a Ganeti-shaped value from the domain into msg. A failure
// is a bug of ours (the domain produced a value the API cannot hold), so it
// surfaces as an internal error.
func fill(msg proto.Message, v any) error {
	if err := legacyjson.FillTrusted(msg, v); err != nil {
		return fmt.Errorf("convert %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

var rowFillers sync.Map // protoreflect.FullName -> *legacyjson.RowFiller

// rowFiller converts query rows of legacyjson.QueryKeys(msg) into messages of msg's
// type.
func rowFiller(msg proto.Message) (*legacyjson.RowFiller, []string) {
	fields := legacyjson.QueryKeys(msg)
	name := msg.ProtoReflect().Descriptor().FullName()
	if v, ok := rowFillers.Load(name); ok {
		return v.(*legacyjson.RowFiller), fields
	}
	v, _ := rowFillers.LoadOrStore(name, legacyjson.NewRowFiller(msg, fields))
	return v.(*legacyjson.RowFiller), fields
}

// fillRow converts one query row into msg, the Ganeti object of the row:
// cells without data are left out, so they read as null.
func fillRow(b *legacyjson.Batch, rf *legacyjson.RowFiller, msg proto.Message, cells []backend.Cell, vals []any) error {
	for i := range vals {
		vals[i] = nil
		if i < len(cells) && cells[i].Status == 0 {
			vals[i] = cells[i].Value
		}
	}
	if err := b.FillRow(rf, msg, vals); err != nil {
		return fmt.Errorf("convert %s: %w", msg.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// listObjects runs the bulk query of a resource into messages made by newMsg.
func listObjects[T proto.Message](ctx context.Context, b backend.Reader, resource string, newMsg func() T) ([]T, error) {
	rf, fields := rowFiller(newMsg())
	res, err := b.Query(ctx, resource, fields, nil, backend.QueryLimits{}) // the conversion copies what it keeps
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(res.Data))
	vals := make([]any, len(fields))
	var batch legacyjson.Batch
	for _, row := range res.Data {
		m := newMsg()
		if err := fillRow(&batch, rf, m, row, vals); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// getObject reads one object of a resource into msg.
func getObject(ctx context.Context, b backend.Reader, resource, name string, msg proto.Message) error {
	rf, fields := rowFiller(msg)
	cells, err := b.Get(ctx, resource, name, fields)
	if err != nil {
		return err
	}
	return fillRow(&legacyjson.Batch{}, rf, msg, cells, make([]any, len(fields)))
}

// queryResponse converts a domain query result.
func queryResponse(res *backend.QueryResult) (*rapiv2.QueryResponse, error) {
	resp := &rapiv2.QueryResponse{Fields: fieldDefinitions(res.Fields)}
	resp.Data = make([]*rapiv2.QueryRow, len(res.Data))
	var batch legacyjson.Batch
	tuple := make([]any, 2)
	for i, row := range res.Data {
		cells := make([]*rapiv2.QueryCell, len(row))
		block := make([]rapiv2.QueryCell, len(row))
		for j, c := range row {
			cell := &block[j]
			tuple[0], tuple[1] = int64(c.Status), c.Value
			if err := batch.FillTrusted(cell, tuple); err != nil {
				return nil, fmt.Errorf("convert %s: %w", cell.ProtoReflect().Descriptor().FullName(), err)
			}
			cells[j] = cell
		}
		resp.Data[i] = &rapiv2.QueryRow{Cells: cells}
	}
	return resp, nil
}

func fieldDefinitions(defs []backend.FieldDef) []*rapiv2.FieldDefinition {
	out := make([]*rapiv2.FieldDefinition, len(defs))
	for i, d := range defs {
		out[i] = &rapiv2.FieldDefinition{Name: d.Name, Title: d.Title, Kind: fieldKind(d.Kind), Doc: d.Doc}
	}
	return out
}

func fieldKind(kind string) rapiv2.QueryFieldKind {
	n, _ := legacyenum.Parse(rapiv2.QueryFieldKind(0).Descriptor(), kind)
	return rapiv2.QueryFieldKind(n)
}

// badRequest is a request the HTTP layer of Ganeti rejects with 400.
func badRequest(format string, args ...any) error {
	return errs.BadRequest(format, args...)
}
