package jobs

import (
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
)

// Opcode parameters every job-relevant opcode message has (by proto name).
const (
	paramDryRun   = "dry_run"
	paramPriority = "priority"
	paramDepends  = "depends"
	paramReason   = "reason"
)

// Priority bounds (constants.json opcode_priority).
const (
	PriorityHighest = -20
	PriorityHigh    = -10
	PriorityNormal  = 0
	PriorityLow     = 10
	PriorityLowest  = 19
)

func field(msg proto.Message, name string) (protoreflect.Message, protoreflect.FieldDescriptor) {
	m := msg.ProtoReflect()
	return m, m.Descriptor().Fields().ByName(protoreflect.Name(name))
}

// dryRunOf returns the opcode's dry_run parameter.
func dryRunOf(msg proto.Message) bool {
	m, fd := field(msg, paramDryRun)
	if fd == nil || fd.Kind() != protoreflect.BoolKind || !m.Has(fd) {
		return false
	}
	return m.Get(fd).Bool()
}

// priorityOf returns the opcode's priority as Ganeti's number.
func priorityOf(msg proto.Message) int {
	m, fd := field(msg, paramPriority)
	if fd == nil || !m.Has(fd) {
		return PriorityNormal
	}
	switch fd.Kind() {
	case protoreflect.EnumKind:
		if n, ok := legacyenum.Num(fd.Enum(), m.Get(fd).Enum()); ok {
			return int(n)
		}
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return int(m.Get(fd).Int())
	}
	return PriorityNormal
}

// dependency is one resolved entry of an opcode's depends.
type dependency struct {
	JobID    int64    `json:"job_id"`
	Statuses []string `json:"statuses"`
}

// resolveDepends reads the opcode's depends, turns relative job ids
// (negative: relative to jobID) into absolute ones in msg, and returns them.
func resolveDepends(msg proto.Message, jobID int64) ([]dependency, error) {
	m, fd := field(msg, paramDepends)
	if fd == nil || !fd.IsList() || fd.Message() == nil {
		return nil, nil
	}
	list := m.Get(fd).List()
	var out []dependency
	for i := 0; i < list.Len(); i++ {
		dep, ok := list.Get(i).Message().Interface().(*rapiv2.JobDependency)
		if !ok {
			continue
		}
		id := dep.GetJobId()
		if id < 0 {
			abs := jobID + id
			if abs < 0 {
				return nil, errs.Prereq(errs.CodeInval, "Job id can't be negative")
			}
			dep.JobId = abs
			id = abs
		}
		d := dependency{JobID: id, Statuses: []string{}}
		for _, st := range dep.GetStatuses() {
			s, ok := legacyenum.Of(st)
			if !ok {
				return nil, errs.Prereq(errs.CodeInval, "Invalid job dependency status")
			}
			d.Statuses = append(d.Statuses, s)
		}
		out = append(out, d)
	}
	return out, nil
}

// appendReason appends an entry to the opcode's reason trail.
func appendReason(msg proto.Message, source, reason string, ns int64) {
	m, fd := field(msg, paramReason)
	if fd == nil || !fd.IsList() || fd.Message() == nil ||
		fd.Message().FullName() != (&rapiv2.ReasonEntry{}).ProtoReflect().Descriptor().FullName() {
		return
	}
	list := m.Mutable(fd).List()
	list.Append(protoreflect.ValueOfMessage((&rapiv2.ReasonEntry{Source: source, Reason: reason, TimestampNs: ns}).ProtoReflect()))
}

// summaryOf is Ganeti's opcode summary: the OP_ID without "OP_", plus
// "(<value of the summary field>)" when the opcode has one.
func summaryOf(msg proto.Message) string {
	info := opcodeInfo(msg)
	txt := strings.TrimPrefix(info.GetId(), "OP_")
	name := info.GetSummaryField()
	if name == "" {
		return txt
	}
	m := msg.ProtoReflect()
	fds := m.Descriptor().Fields()
	var fd protoreflect.FieldDescriptor
	for i := 0; i < fds.Len(); i++ {
		if f := fds.Get(i); f.JSONName() == name || string(f.Name()) == name {
			fd = f
			break
		}
	}
	if fd == nil {
		return txt
	}
	return txt + "(" + pyValueString(m, fd) + ")"
}

// pyValueString renders a parameter as Python's str() does (lists joined
// with ",", as Ganeti's Summary).
func pyValueString(m protoreflect.Message, fd protoreflect.FieldDescriptor) string {
	if fd.IsList() {
		l := m.Get(fd).List()
		parts := make([]string, l.Len())
		for i := range parts {
			parts[i] = pyScalar(fd, l.Get(i))
		}
		return strings.Join(parts, ",")
	}
	if fd.HasPresence() && !m.Has(fd) {
		return "None"
	}
	return pyScalar(fd, m.Get(fd))
}

func pyScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BoolKind:
		if v.Bool() {
			return "True"
		}
		return "False"
	case protoreflect.EnumKind:
		if s, ok := legacyenum.String(fd.Enum(), v.Enum()); ok {
			return s
		}
		return "None"
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		return pyFloat(v.Float())
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	}
	return "..."
}

// pyFloat formats f as Python's str(float): the shortest repr, with ".0"
// for integral values and an exponent below 1e-4 or from 1e16 on.
func pyFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes e-05 / e+16 already with two digits at least.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
