package legacyjson

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
)

// This file compiles the (param) option's sig, Ganeti's compact type
// signature of an opcode parameter (maybe<T>, list<T>, set<T>, dict<K,V>,
// tuple<A,B>, (A|B), enum{a,b}, int[min..max], nonempty_string, job_id,
// ipv4_address, private<T>, any, ...), into a check of JSON-like values.
// The decoder applies it to the parameters whose proto type cannot hold
// Ganeti's check (google.protobuf.Struct, Value and ListValue fields: disk
// and NIC specifications, modifications), CheckParams to the same fields
// of typed messages. Typed scalars are checked through their proto type
// and the spec's min, max, non_empty and format instead.
//
// Beyond Ganeti's ht checks, every integer must be in the int64 range
// (Python's ints are unbounded; the store and the executors are not).

type sigKind uint8

const (
	sigAny sigKind = iota
	sigBool
	sigInt
	sigFloat
	sigString
	sigEnum
	sigList
	sigDict
	sigTuple
	sigUnion
	sigMaybe
	sigJobID
	sigRelJobID
	sigFormat // a string in ParamSpec.format's syntax (ipv4_address, ...)
)

type sigType struct {
	kind     sigKind
	nonEmpty bool
	min, max *int64
	format   string
	enum     []string   // enum values as written in the sig
	elems    []*sigType // list/maybe: [item]; dict: [key, value]; tuple, union: members
}

// trivial reports whether the type accepts every value the proto type
// already enforces the JSON shape of (any, dict<any,any>, list<any>,
// maybe<...> of those, private<any>).
func (t *sigType) trivial() bool {
	switch t.kind {
	case sigAny:
		return true
	case sigMaybe, sigList:
		return t.elems[0].trivial()
	case sigDict:
		return t.elems[0].trivial() && t.elems[1].trivial()
	}
	return false
}

var sigCache sync.Map // string -> *sigType (nil when the sig does not parse)

// compileSig returns the compiled sig, nil when it is empty, does not
// parse or checks nothing the proto type does not.
func compileSig(sig string) *sigType {
	if sig == "" {
		return nil
	}
	if v, ok := sigCache.Load(sig); ok {
		t, _ := v.(*sigType)
		return t
	}
	p := sigParser{s: sig}
	t := p.parse()
	if p.err || p.i != len(p.s) || t.trivial() {
		t = nil
	}
	sigCache.Store(sig, t)
	return t
}

// parseSig parses a sig (for tests): ok is false when it is malformed or
// names an unknown type.
func parseSig(sig string) (*sigType, bool) {
	p := sigParser{s: sig}
	t := p.parse()
	return t, !p.err && p.i == len(p.s)
}

type sigParser struct {
	s   string
	i   int
	err bool
}

func (p *sigParser) fail() *sigType {
	p.err = true
	return &sigType{kind: sigAny}
}

func (p *sigParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// word reads a base type name or enum value.
func (p *sigParser) word() string {
	start := p.i
	for p.i < len(p.s) && !strings.ContainsRune("<>{}(),|[]", rune(p.s[p.i])) {
		p.i++
	}
	return p.s[start:p.i]
}

// list parses "T,T,...close" after the opening bracket.
func (p *sigParser) list(close byte) []*sigType {
	var out []*sigType
	for !p.err {
		out = append(out, p.parse())
		if p.eat(close) {
			return out
		}
		if !p.eat(',') {
			p.fail()
		}
	}
	return out
}

func (p *sigParser) parse() *sigType {
	if p.err {
		return &sigType{kind: sigAny}
	}
	if p.eat('(') {
		var alts []*sigType
		for !p.err {
			alts = append(alts, p.parse())
			if p.eat(')') {
				break
			}
			if !p.eat('|') {
				return p.fail()
			}
		}
		return &sigType{kind: sigUnion, elems: alts}
	}
	name := p.word()
	switch {
	case p.eat('<'):
		elems := p.list('>')
		switch {
		case name == "maybe" && len(elems) == 1:
			return &sigType{kind: sigMaybe, elems: elems}
		case (name == "list" || name == "set") && len(elems) == 1:
			return &sigType{kind: sigList, elems: elems}
		case name == "private" && len(elems) == 1:
			return elems[0]
		case name == "dict" && len(elems) == 2:
			return &sigType{kind: sigDict, elems: elems}
		case name == "tuple" && len(elems) > 0:
			return &sigType{kind: sigTuple, elems: elems}
		}
		return p.fail()
	case name == "enum" && p.eat('{'):
		var vals []string
		for {
			vals = append(vals, p.word())
			if p.eat('}') {
				return &sigType{kind: sigEnum, enum: vals}
			}
			if !p.eat(',') {
				return p.fail()
			}
		}
	case name == "int" && p.eat('['):
		t := &sigType{kind: sigInt}
		lo, hi, ok := strings.Cut(p.word(), "..")
		if !ok || !p.eat(']') {
			return p.fail()
		}
		for _, b := range []struct {
			s   string
			dst **int64
		}{{lo, &t.min}, {hi, &t.max}} {
			if b.s == "" {
				continue
			}
			n, err := strconv.ParseInt(b.s, 10, 64)
			if err != nil {
				return p.fail()
			}
			*b.dst = &n
		}
		return t
	}
	switch name {
	case "any":
		return &sigType{kind: sigAny}
	case "bool":
		return &sigType{kind: sigBool}
	case "int":
		return &sigType{kind: sigInt}
	case "float":
		return &sigType{kind: sigFloat}
	case "string":
		return &sigType{kind: sigString}
	case "nonempty_string":
		return &sigType{kind: sigString, nonEmpty: true}
	case "job_id":
		return &sigType{kind: sigJobID}
	case "relative_job_id":
		return &sigType{kind: sigRelJobID}
	case "ipv4_address", "ipv6_address", "ipv4_network", "ipv6_network":
		return &sigType{kind: sigFormat, format: name}
	}
	return p.fail()
}

// check reports whether the JSON-like value v (as the decoder sees it:
// json.Number, float64 and Go integers for numbers, Object or
// map[string]any for objects) has the type. Numbers that are not JSON
// literals (float64, from a google.protobuf.Value) count as integers when
// they are integral: the proto cannot tell 2 from 2.0.
func (t *sigType) check(v any, depth int) bool {
	if depth > maxDepth {
		return false
	}
	v = deref(v)
	switch t.kind {
	case sigAny:
		return true
	case sigMaybe:
		return v == nil || t.elems[0].check(v, depth+1)
	case sigBool:
		_, ok := asBool(v)
		return ok
	case sigInt:
		i, ok := sigInt64(v)
		return ok && (t.min == nil || i >= *t.min) && (t.max == nil || i <= *t.max)
	case sigFloat:
		if _, isBool := asBool(v); isBool {
			return false
		}
		f, err := toFloat(v)
		return err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	case sigString:
		s, ok := v.(string)
		if !ok {
			s, ok = asString(v)
		}
		return ok && (!t.nonEmpty || s != "")
	case sigFormat:
		s, ok := asString(v)
		return ok && checkFormat(t.format, s)
	case sigEnum:
		return t.enumHas(v)
	case sigJobID:
		if s, ok := asString(v); ok {
			return s != "" && strings.Trim(s, "0123456789") == ""
		}
		i, ok := sigInt64(v)
		return ok && i >= 0
	case sigRelJobID:
		i, ok := sigInt64(v)
		return ok && i < 0
	case sigList:
		list, ok := asList(v)
		if !ok {
			return false
		}
		for _, x := range list {
			if !t.elems[0].check(x, depth+1) {
				return false
			}
		}
		return true
	case sigTuple:
		list, ok := asList(v)
		if !ok || len(list) != len(t.elems) {
			return false
		}
		for i, x := range list {
			if !t.elems[i].check(x, depth+1) {
				return false
			}
		}
		return true
	case sigDict:
		obj, ok := asObject(v)
		if !ok {
			return false
		}
		for _, mem := range obj {
			if !t.elems[0].check(mem.Key, depth+1) || !t.elems[1].check(mem.Value, depth+1) {
				return false
			}
		}
		return true
	case sigUnion:
		for _, alt := range t.elems {
			if alt.check(v, depth+1) {
				return true
			}
		}
		return false
	}
	return false
}

// enumHas compares like Python's ==: a string value with the string
// members, a number with the members written as integers.
func (t *sigType) enumHas(v any) bool {
	if s, ok := asString(v); ok {
		for _, e := range t.enum {
			if e == s {
				if _, err := strconv.ParseInt(e, 10, 64); err != nil {
					return true
				}
			}
		}
		return false
	}
	f, ok := pyNumber(v)
	if !ok {
		return false
	}
	for _, e := range t.enum {
		if n, err := strconv.ParseInt(e, 10, 64); err == nil && float64(n) == f {
			return true
		}
	}
	return false
}

// sigInt64 is the value of a Python int within the int64 range: a JSON
// integer literal (not a float literal such as 1.0 or 1e3, not a bool), a
// Go integer, or an integral, finite float64 (a google.protobuf.Value
// number).
func sigInt64(v any) (int64, bool) {
	switch t := v.(type) {
	case json.Number:
		i, err := strconv.ParseInt(string(t), 10, 64)
		return i, err == nil
	case float64:
		return finiteInt(t)
	case float32:
		return finiteInt(float64(t))
	case bool, string, nil:
		return 0, false
	}
	if _, isBool := asBool(v); isBool {
		return 0, false
	}
	if _, isStr := asString(v); isStr {
		return 0, false
	}
	d := decoder{}
	i, err := d.toInt(v)
	return i, err == nil
}

// finiteInt converts an integral float64 within the int64 range.
func finiteInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || math.IsInf(f, 0) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}
