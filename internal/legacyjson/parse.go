package legacyjson

import (
	"encoding/json"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// maxBodyDepth bounds the nesting of a request body, like Python's
// recursion limit does for Ganeti's JSON parser.
const maxBodyDepth = 1000

// maxDepth bounds the nesting of values built in Go (ToValue, Marshal).
const maxDepth = 10000

var errSyntax = errors.New("json syntax error")

// parseJSON parses exactly one JSON value (surrounded by optional
// whitespace) the way Python's json.loads does: numbers stay json.Number,
// objects keep their key order (a repeated key keeps its first position and
// its last value), and NaN, Infinity and -Infinity are accepted.
func parseJSON(data []byte, depthLimit int) (any, error) {
	if !utf8.Valid(data) {
		return nil, errSyntax
	}
	p := parser{data: data, limit: depthLimit}
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.data) {
		return nil, errSyntax
	}
	return v, nil
}

type parser struct {
	data  []byte
	pos   int
	depth int
	limit int
}

func (p *parser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) literal(word string, v any) (any, error) {
	if len(p.data)-p.pos < len(word) || string(p.data[p.pos:p.pos+len(word)]) != word {
		return nil, errSyntax
	}
	p.pos += len(word)
	return v, nil
}

func (p *parser) value() (any, error) {
	if p.pos >= len(p.data) {
		return nil, errSyntax
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		return p.string()
	case c == 't':
		return p.literal("true", true)
	case c == 'f':
		return p.literal("false", false)
	case c == 'n':
		return p.literal("null", nil)
	case c == 'N':
		return p.literal("NaN", json.Number("NaN"))
	case c == 'I':
		return p.literal("Infinity", json.Number("Infinity"))
	case c == '-' && p.pos+1 < len(p.data) && p.data[p.pos+1] == 'I':
		return p.literal("-Infinity", json.Number("-Infinity"))
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	}
	return nil, errSyntax
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > p.limit {
		return errSyntax
	}
	return nil
}

func (p *parser) object() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.pos++ // '{'
	obj := Object{}
	var index map[string]int // built once the object gets large
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return obj, nil
	}
	for {
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return nil, errSyntax
		}
		k, err := p.string()
		if err != nil {
			return nil, err
		}
		key := k.(string)
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, errSyntax
		}
		p.pos++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		pos := -1
		if index != nil {
			if i, ok := index[key]; ok {
				pos = i
			}
		} else {
			for i := range obj {
				if obj[i].Key == key {
					pos = i
					break
				}
			}
		}
		if pos >= 0 {
			obj[pos].Value = v
		} else {
			obj = append(obj, Member{Key: key, Value: v})
			if index != nil {
				index[key] = len(obj) - 1
			} else if len(obj) > 16 {
				index = make(map[string]int, 2*len(obj))
				for i := range obj {
					index[obj[i].Key] = i
				}
			}
		}
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errSyntax
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case '}':
			p.pos++
			return obj, nil
		default:
			return nil, errSyntax
		}
	}
}

func (p *parser) array() (any, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	p.pos++ // '['
	list := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return list, nil
	}
	for {
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, errSyntax
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
			p.skipSpace()
		case ']':
			p.pos++
			return list, nil
		default:
			return nil, errSyntax
		}
	}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// number scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?
func (p *parser) number() (any, error) {
	start := p.pos
	d := p.data
	if d[p.pos] == '-' {
		p.pos++
	}
	switch {
	case p.pos < len(d) && d[p.pos] == '0':
		p.pos++
	case p.pos < len(d) && isDigit(d[p.pos]):
		for p.pos < len(d) && isDigit(d[p.pos]) {
			p.pos++
		}
	default:
		return nil, errSyntax
	}
	if p.pos+1 < len(d) && d[p.pos] == '.' && isDigit(d[p.pos+1]) {
		p.pos++
		for p.pos < len(d) && isDigit(d[p.pos]) {
			p.pos++
		}
	}
	if p.pos < len(d) && (d[p.pos] == 'e' || d[p.pos] == 'E') {
		q := p.pos + 1
		if q < len(d) && (d[q] == '+' || d[q] == '-') {
			q++
		}
		if q < len(d) && isDigit(d[q]) {
			for q < len(d) && isDigit(d[q]) {
				q++
			}
			p.pos = q
		}
	}
	return json.Number(d[start:p.pos]), nil
}

func hexVal(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

func (p *parser) hex4() (rune, bool) {
	if len(p.data)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for i := 0; i < 4; i++ {
		h := hexVal(p.data[p.pos+i])
		if h < 0 {
			return 0, false
		}
		r = r<<4 | h
	}
	p.pos += 4
	return r, true
}

func (p *parser) string() (any, error) {
	p.pos++ // opening quote
	d := p.data
	start := p.pos
	// Fast path: no escapes.
	for p.pos < len(d) {
		c := d[p.pos]
		if c == '"' {
			s := string(d[start:p.pos])
			p.pos++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, errSyntax
		}
		p.pos++
	}
	buf := append([]byte(nil), d[start:p.pos]...)
	for p.pos < len(d) {
		c := d[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			buf = append(buf, c)
			p.pos++
			continue
		}
		p.pos++ // backslash
		if p.pos >= len(d) {
			return nil, errSyntax
		}
		e := d[p.pos]
		p.pos++
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, errSyntax
			}
			if utf16.IsSurrogate(r) {
				// Join a surrogate pair; a lone surrogate (which Python
				// would keep) cannot live in a proto string: U+FFFD.
				r2 := utf8.RuneError
				if len(d)-p.pos >= 6 && d[p.pos] == '\\' && d[p.pos+1] == 'u' {
					save := p.pos
					p.pos += 2
					if lo, ok := p.hex4(); ok && utf16.DecodeRune(r, lo) != utf8.RuneError {
						r2 = utf16.DecodeRune(r, lo)
					} else {
						p.pos = save
					}
				}
				r = r2
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}
