package cluster

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// Ganeti's query filter language (qlang), as luxid evaluates it:
//
//	null                      no filter
//	["&", f1, f2, ...]        and (true when empty)
//	["|", f1, f2, ...]        or (false when empty)
//	["!", f]                  not
//	["?", field]              the (boolean) field is true
//	["==", field, value]      also "=" (legacy); "!=" is its negation
//	["<", field, value]       also ">", "<=", ">="
//	["=~", field, regexp]     regular expression search in a text field
//	["=[]", field, value]     the list field contains value
//
// Values are strings or integers. Text fields compare as strings, numeric
// fields as numbers; a host name field (node and instance names, pnode)
// also matches its short name ("node1" matches "node1.example.com"). A field
// whose cell has no data (status other than normal) lets the item pass, as
// in Ganeti. Malformed filters and type mismatches are wrong_input errors.

// Limits of a filter (Ganeti has none; these keep a filter's cost bounded
// before it is evaluated): its nesting, its number of nodes (operators and
// comparisons; a filter naming 4,000 objects has about 4,000), and the
// length of a regular expression, which is compiled.
const (
	MaxFilterDepth  = 64
	MaxFilterNodes  = 8192
	MaxFilterRegexp = 4096
)

type filterOp int

const (
	opAnd filterOp = iota
	opOr
	opNot
	opTrue
	opEQ
	opLT
	opGT
	opLE
	opGE
	opRegexp
	opContains
)

type filterNode struct {
	op    filterOp
	kids  []*filterNode
	field string
	value any // string or int64
	re    *regexp.Regexp
}

var binaryOps = map[string]filterOp{
	"=": opEQ, "==": opEQ, "<": opLT, ">": opGT, "<=": opLE, ">=": opGE, "=~": opRegexp, "=[]": opContains,
}

// parseFilter parses a decoded JSON filter; nil means no filter.
func parseFilter(v any) (*filterNode, error) {
	nodes := 0
	return parseFilterDepth(v, 0, &nodes)
}

func parseFilterDepth(v any, depth int, nodes *int) (*filterNode, error) {
	// Every element counts, a null one ("no filter") too.
	if *nodes++; *nodes > MaxFilterNodes {
		return nil, errs.QueryFilter("Filter has more than %d operators and comparisons", MaxFilterNodes)
	}
	if v == nil {
		return nil, nil
	}
	if depth > MaxFilterDepth {
		return nil, errs.QueryFilter("Filter is nested deeper than %d levels", MaxFilterDepth)
	}
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, errs.QueryFilter("Cannot deserialise filter: expected array [string, args], got %s", jsonText(v))
	}
	op, ok := list[0].(string)
	if !ok {
		return nil, errs.QueryFilter("Cannot deserialise filter: expected array [string, args], got %s", jsonText(v))
	}
	args := list[1:]
	switch op {
	case "&", "|":
		n := &filterNode{op: opAnd}
		if op == "|" {
			n.op = opOr
		}
		for _, a := range args {
			k, err := parseFilterDepth(a, depth+1, nodes)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, k) // a nil kid is "no filter" (true)
		}
		return n, nil
	case "!":
		if len(args) != 1 {
			return nil, errs.QueryFilter("Cannot deserialise field, expected [filter] but got %s", jsonText(args))
		}
		k, err := parseFilterDepth(args[0], depth+1, nodes)
		if err != nil {
			return nil, err
		}
		return &filterNode{op: opNot, kids: []*filterNode{k}}, nil
	case "?":
		if len(args) != 1 {
			return nil, errs.QueryFilter("Cannot deserialise field, expected [fieldname] but got %s", jsonText(args))
		}
		field, ok := args[0].(string)
		if !ok {
			return nil, errs.QueryFilter("Cannot deserialise field, expected [fieldname] but got %s", jsonText(args))
		}
		return &filterNode{op: opTrue, field: field}, nil
	case "!=":
		eq, err := parseBinary(opEQ, args)
		if err != nil {
			return nil, err
		}
		return &filterNode{op: opNot, kids: []*filterNode{eq}}, nil
	}
	if bop, ok := binaryOps[op]; ok {
		return parseBinary(bop, args)
	}
	return nil, errs.QueryFilter("Unknown filter operand '%s'", op)
}

func parseBinary(op filterOp, args []any) (*filterNode, error) {
	if len(args) != 2 {
		return nil, errs.QueryFilter("Cannot deserialise field/value pair, expected [fieldname, value] but got %s", jsonText(args))
	}
	field, ok := args[0].(string)
	if !ok {
		return nil, errs.QueryFilter("Cannot deserialise field/value pair, expected [fieldname, value] but got %s", jsonText(args))
	}
	n := &filterNode{op: op, field: field}
	if op == opRegexp {
		pattern, ok := args[1].(string)
		if !ok {
			return nil, errs.QueryFilter("Regular expression must be a string, got %s", jsonText(args[1]))
		}
		if len(pattern) > MaxFilterRegexp {
			return nil, errs.QueryFilter("Regular expression longer than %d bytes", MaxFilterRegexp)
		}
		re, err := regexp.Compile(pattern)
		if err != nil {
			return nil, errs.QueryFilter("Invalid regular expression %s: %v", jsonText(pattern), err)
		}
		n.re, n.value = re, pattern
		return n, nil
	}
	val, err := filterValue(args[1])
	if err != nil {
		return nil, err
	}
	n.value = val
	return n, nil
}

// filterValue accepts a string or an integral number.
func filterValue(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64, json.Number:
		if i, ok := asInt(x); ok {
			return i, nil
		}
		f, _ := asFloat(x)
		return nil, errs.QueryFilter("Cannot deserialise numeric filter value, expecting integral but got a fractional value: %v", f)
	}
	return nil, errs.QueryFilter("Cannot deserialise filter value, expecting string or integer, got %s", jsonText(v))
}

// requestedNames returns the names a filter asks for when it is nothing
// but equality tests of the name field joined by "|" (Ganeti then looks the
// names up directly); ok is false for any other filter.
func requestedNames(n *filterNode, nameField string) (names []string, ok bool) {
	if n == nil {
		return nil, true
	}
	switch n.op {
	case opEQ:
		if n.field != nameField {
			return nil, false
		}
		if s, isStr := n.value.(string); isStr {
			return []string{s}, true
		}
		return nil, true
	case opOr:
		for _, k := range n.kids {
			if k == nil {
				continue
			}
			sub, ok := requestedNames(k, nameField)
			if !ok {
				return nil, false
			}
			names = append(names, sub...)
		}
		return names, true
	}
	return nil, false
}

// compiledFilter is a filter whose fields are resolved against a table.
type compiledFilter[T any] struct {
	root   *filterNode
	fields map[string]*field[T]
}

func compileFilter[T any](root *filterNode, tbl *table[T]) (*compiledFilter[T], error) {
	cf := &compiledFilter[T]{root: root, fields: map[string]*field[T]{}}
	var walk func(n *filterNode) error
	walk = func(n *filterNode) error {
		if n == nil {
			return nil
		}
		for _, k := range n.kids {
			if err := walk(k); err != nil {
				return err
			}
		}
		if n.op == opAnd || n.op == opOr || n.op == opNot {
			return nil
		}
		f, ok := tbl.fields[n.field]
		if !ok {
			return errs.QueryFilter("Can't find field named '%s'", n.field)
		}
		cf.fields[n.field] = f
		return nil
	}
	if err := walk(root); err != nil {
		return nil, err
	}
	return cf, nil
}

func (cf *compiledFilter[T]) match(ctx *queryCtx, item T) (bool, error) {
	return cf.eval(cf.root, ctx, item)
}

func (cf *compiledFilter[T]) eval(n *filterNode, ctx *queryCtx, item T) (bool, error) {
	if n == nil {
		return true, nil
	}
	switch n.op {
	case opAnd:
		for _, k := range n.kids {
			ok, err := cf.eval(k, ctx, item)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case opOr:
		for _, k := range n.kids {
			ok, err := cf.eval(k, ctx, item)
			if err != nil {
				return false, err
			}
			if ok {
				return true, nil
			}
		}
		return false, nil
	case opNot:
		ok, err := cf.eval(n.kids[0], ctx, item)
		return !ok, err
	}
	f := cf.fields[n.field]
	cell := f.get(ctx, item)
	if cell.Status != StatusNormal {
		return true, nil // no data to filter on: Ganeti lets the item pass
	}
	v := cell.Value
	if f.qff == qffTimestamp {
		v = timestampSeconds(v)
	}
	switch n.op {
	case opTrue:
		b, ok := v.(bool)
		if !ok {
			return false, errs.QueryFilter("Unexpected value '%s' in boolean context", jsonText(v))
		}
		return b, nil
	case opRegexp:
		s, ok := v.(string)
		if !ok {
			return false, errs.QueryFilter("Invalid field value used in regexp matching, expecting string but got '%s'", jsonText(v))
		}
		return n.re.MatchString(s), nil
	case opContains:
		return containsValue(n.value, v)
	case opEQ:
		if f.qff == qffHostname {
			if want, ok := n.value.(string); ok {
				if have, ok := v.(string); ok {
					return hostnameMatch(have, want), nil
				}
			}
		}
	}
	c, err := compareValues(n.value, v)
	if err != nil {
		return false, err
	}
	switch n.op {
	case opEQ:
		return c == 0, nil
	case opLT:
		return c < 0, nil
	case opGT:
		return c > 0, nil
	case opLE:
		return c <= 0, nil
	default: // opGE
		return c >= 0, nil
	}
}

// compareValues compares a field value with a filter value: -1, 0 or 1 as
// the field value is less than, equal to or greater than want.
func compareValues(want, have any) (int, error) {
	switch w := want.(type) {
	case string:
		if h, ok := have.(string); ok {
			return strings.Compare(h, w), nil
		}
	case int64:
		switch h := have.(type) {
		case int64:
			return cmpOrdered(h, w), nil
		case int:
			return cmpOrdered(int64(h), w), nil
		case float64:
			if !math.IsNaN(h) {
				return cmpOrdered(h, float64(w)), nil
			}
		}
	}
	return 0, errs.QueryFilter("Invalid types in comparison, trying to compare %s with '%s'", jsonText(have), jsonText(want))
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func containsValue(want, have any) (bool, error) {
	var list []any
	switch h := have.(type) {
	case []any:
		list = h
	case []string:
		for _, e := range h {
			if e == want {
				return true, nil
			}
		}
		return false, nil
	case []int64:
		for _, e := range h {
			if e == want {
				return true, nil
			}
		}
		return false, nil
	default:
		return false, errs.QueryFilter("Invalid field value used in contains filter, expecting a list but got '%s'", jsonText(have))
	}
	for _, e := range list {
		if e == nil {
			continue
		}
		if c, err := compareValues(want, e); err == nil && c == 0 {
			return true, nil
		}
	}
	return false, nil
}

// hostnameMatch is Ganeti's compareNameComponent: the full name, or its
// first components up to a dot.
func hostnameMatch(name, lookup string) bool {
	return name == lookup || (strings.HasPrefix(name, lookup) && len(name) > len(lookup) && name[len(lookup)] == '.')
}

// timestampSeconds reduces a [seconds, microseconds] pair to its seconds.
func timestampSeconds(v any) any {
	switch x := v.(type) {
	case []any:
		if len(x) == 2 {
			return x[0]
		}
	case []int64:
		if len(x) == 2 {
			return x[0]
		}
	}
	return v
}

// jsonText renders a value for an error message, shortened.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
