package legacyjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson/testdata/testpb"
)

func TestContentType(t *testing.T) {
	var m runtime.Marshaler = Marshaler{}
	if ct := m.ContentType(nil); ct != "application/json" {
		t.Errorf("ContentType = %q", ct)
	}
}

func TestDecoderBodies(t *testing.T) {
	dec := func(body string, v any) error {
		return Marshaler{}.NewDecoder(strings.NewReader(body)).Decode(v)
	}
	// An empty body is io.EOF, which grpc-gateway ignores.
	var op testpb.OpTestRename
	if err := dec("", &op); err != io.EOF {
		t.Errorf("empty body: %v, want io.EOF", err)
	}
	for _, body := range []string{" ", "\n", "{", `{"a":1,}`, `[1,]`, `{} {}`, `{}x`, `{'a': 1}`, "01", "1.", "-", ".5",
		"+1", "tru", "nul", "\"\t\"", `"\x"`, `"\u12"`, "\xff", `{"a" 1}`, `{1: 2}`, "[", "]", "NaNa", "-Inf", "\ufeff{}"} {
		checkErr(t, dec(body, &op), "Unable to parse JSON data")
	}
	checkErr(t, dec(" \t\r\n{\"new_name\": \"x\"}\n ", &op), "")
	if op.GetNewName() != "x" {
		t.Errorf("new_name = %q", op.GetNewName())
	}

	// One body per decoder: the second Decode is io.EOF.
	d := Marshaler{}.NewDecoder(strings.NewReader(`{}`))
	if err := d.Decode(&op); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(&op); err != io.EOF {
		t.Errorf("second Decode: %v, want io.EOF", err)
	}

	// Read errors are passed through (e.g. http.MaxBytesReader).
	r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(`{"new_name": "xxxxxxxx"}`)), 5)
	var mbe *http.MaxBytesError
	if err := (Marshaler{}).NewDecoder(r).Decode(&op); !errors.As(err, &mbe) {
		t.Errorf("read error = %v, want *http.MaxBytesError", err)
	}
	if err := (Marshaler{}).Unmarshal(nil, &op); err != io.EOF {
		t.Errorf("Unmarshal(nil) = %v, want io.EOF", err)
	}
}

func TestDecodeTargets(t *testing.T) {
	m := Marshaler{}
	// body: "role" (string field)
	var role string
	checkErr(t, m.Unmarshal([]byte(`"master-candidate"`), &role), "")
	if role != "master-candidate" {
		t.Errorf("role = %q", role)
	}
	checkErr(t, m.Unmarshal([]byte(`null`), &role), `Body contents: Type is 'NoneType', but 'str' is expected`)
	checkErr(t, m.Unmarshal([]byte(`{}`), &role), `Body contents: Type is 'dict', but 'str' is expected`)
	checkErr(t, m.Unmarshal([]byte(`["x"]`), &role), `Body contents: Type is 'list', but 'str' is expected`)
	checkErr(t, m.Unmarshal([]byte(`5`), &role), `Body contents: Type is 'int', but 'str' is expected`)

	// optional string field: **string
	var opt *string
	checkErr(t, m.Unmarshal([]byte(`"x"`), &opt), "")
	if opt == nil || *opt != "x" {
		t.Errorf("opt = %v", opt)
	}
	checkErr(t, m.Unmarshal([]byte(`null`), &opt), "")
	if opt != nil {
		t.Errorf("opt = %v, want nil", opt)
	}

	// repeated string field
	var tags []string
	checkErr(t, m.Unmarshal([]byte(`["a", "b"]`), &tags), "")
	if len(tags) != 2 || tags[1] != "b" {
		t.Errorf("tags = %v", tags)
	}
	checkErr(t, m.Unmarshal([]byte(`"a"`), &tags), `Body contents: Type is 'str', but 'list' is expected`)
	checkErr(t, m.Unmarshal([]byte(`[1]`), &tags), `Body contents: Type is 'int', but 'str' is expected`)

	// enum and repeated enum fields
	var prio testpb.Priority
	checkErr(t, m.Unmarshal([]byte(`10`), &prio), "")
	if prio != testpb.Priority_PRIORITY_LOW {
		t.Errorf("prio = %v", prio)
	}
	checkErr(t, m.Unmarshal([]byte(`"x"`), &prio), `Body contents: Type is 'str', but 'int' is expected`)
	var templates []testpb.DiskTemplate
	checkErr(t, m.Unmarshal([]byte(`["drbd", "plain"]`), &templates), "")
	if len(templates) != 2 || templates[1] != testpb.DiskTemplate_DISK_TEMPLATE_PLAIN {
		t.Errorf("templates = %v", templates)
	}
	checkErr(t, m.Unmarshal([]byte(`["nope"]`), &templates), `Invalid body contents`)

	// message body field: **Msg
	var nic *testpb.Nic
	checkErr(t, m.Unmarshal([]byte(`{"mac": "m"}`), &nic), "")
	equalProto(t, nic, &testpb.Nic{Mac: proto.String("m")})
	checkErr(t, m.Unmarshal([]byte(`[]`), &nic), `Body contents: Type is 'list', but 'dict' is expected`)
	var st *structpb.Struct
	checkErr(t, m.Unmarshal([]byte(`{"a": 1}`), &st), "")
	if st.GetFields()["a"].GetNumberValue() != 1 {
		t.Errorf("struct = %v", st)
	}

	// scalars, maps, any
	var n int64
	checkErr(t, m.Unmarshal([]byte(`12`), &n), "")
	checkErr(t, m.Unmarshal([]byte(`true`), &n), `Body contents: Type is 'bool', but 'int' is expected`)
	var u8 uint8
	checkErr(t, m.Unmarshal([]byte(`256`), &u8), `Invalid body contents`)
	var f float64
	checkErr(t, m.Unmarshal([]byte(`3`), &f), "")
	var b bool
	checkErr(t, m.Unmarshal([]byte(`1`), &b), `Body contents: Type is 'int', but 'bool' is expected`)
	var mp map[string]string
	checkErr(t, m.Unmarshal([]byte(`{"a": "b"}`), &mp), "")
	if mp["a"] != "b" {
		t.Errorf("map = %v", mp)
	}
	var raw []byte
	checkErr(t, m.Unmarshal([]byte(`"aGk="`), &raw), "")
	var anything any
	checkErr(t, m.Unmarshal([]byte(`{"b": [1, 2.5], "a": null}`), &anything), "")
	if got := mustMarshal(t, m, anything); got != `{"b":[1,2.5],"a":null}` {
		t.Errorf("any = %s", got)
	}

	// Programming errors are not DecodeErrors.
	var de *DecodeError
	for _, target := range []any{nil, role, &struct{}{}, new(chan int), new(map[int]string)} {
		if err := m.Unmarshal([]byte(`{}`), target); err == nil || errors.As(err, &de) {
			t.Errorf("Unmarshal into %T = %v, want a non-DecodeError", target, err)
		}
	}
}

func TestEncoder(t *testing.T) {
	var buf bytes.Buffer
	if err := (Marshaler{PythonStyle: true}).NewEncoder(&buf).Encode([]any{1, "é"}); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "[1, \"\\u00e9\"]\n" {
		t.Errorf("Encode = %q", buf.String())
	}
	if err := (Marshaler{}).NewEncoder(&buf).Encode(make(chan int)); err == nil {
		t.Error("Encode(chan) succeeded")
	}
}

func TestParser(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want is the value re-encoded compactly
	}{
		{`{"a": 1, "b": 2, "a": 3}`, `{"a":3,"b":2}`}, // Python dict: first position, last value
		{`[NaN, Infinity, -Infinity, -0, 1E+2, 1.5e-3]`, `[NaN,Infinity,-Infinity,-0,1E+2,1.5e-3]`},
		{`"\ud83d\ude00 \u00e9 \/ \b"`, `"😀 é / \b"`},
		{`"\ud800x"`, "\"\uFFFDx\""}, // a lone surrogate cannot live in a proto string
		{`"\udc00\ud800"`, "\"\uFFFD\uFFFD\""},
		{`"\ud800\u0041"`, "\"\uFFFDA\""},
		{`123456789012345678901234567890`, `123456789012345678901234567890`},
		{`{}`, `{}`},
		{`[]`, `[]`},
	} {
		v, err := parseJSON([]byte(tc.in), maxBodyDepth)
		if err != nil {
			t.Errorf("parse %s: %v", tc.in, err)
			continue
		}
		e := encoder{}
		if err := e.value(v); err != nil {
			t.Errorf("encode %s: %v", tc.in, err)
			continue
		}
		if string(e.buf) != tc.want {
			t.Errorf("parse %s = %s, want %s", tc.in, e.buf, tc.want)
		}
	}
	// Many keys with duplicates (indexed path).
	var sb strings.Builder
	sb.WriteString("{")
	for i := 0; i < 40; i++ {
		sb.WriteString(`"k` + string(rune('a'+i%20)) + `": ` + string(rune('0'+i%10)) + ",")
	}
	sb.WriteString(`"z": 0}`)
	v, err := parseJSON([]byte(sb.String()), maxBodyDepth)
	if err != nil {
		t.Fatal(err)
	}
	if obj := v.(Object); len(obj) != 21 || obj[0].Key != "ka" || obj[0].Value != json.Number("0") {
		t.Errorf("dedup: %v", obj)
	}
	// Nesting is bounded.
	deep := strings.Repeat("[", maxBodyDepth) + strings.Repeat("]", maxBodyDepth)
	if _, err := parseJSON([]byte(deep), maxBodyDepth); err != nil {
		t.Errorf("depth %d rejected: %v", maxBodyDepth, err)
	}
	deeper := "[" + deep + "]"
	if _, err := parseJSON([]byte(deeper), maxBodyDepth); err == nil {
		t.Errorf("depth %d accepted", maxBodyDepth+1)
	}
	checkErr(t, Marshaler{}.Unmarshal([]byte(strings.Repeat(`{"a":`, 100000)), &testpb.Everything{}), "Unable to parse JSON data")
}

func TestConcurrentUse(t *testing.T) {
	msgs := benchInstances(50)
	want := mustMarshal(t, Marshaler{}, msgs)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				b, err := Marshaler{}.Marshal(msgs)
				if err != nil || string(b[:len(b)-1]) != want {
					t.Errorf("concurrent Marshal differs: %v", err)
					return
				}
				var op testpb.OpTestRename
				checkErr(t, decodeBody(&op, `{"new_name": ""}`), failsValidation("new_name"))
			}
		}()
	}
	wg.Wait()
}

func TestMarshalBulkShape(t *testing.T) {
	got := mustMarshal(t, Marshaler{}, benchInstances(2))
	var v []map[string]any
	if err := json.Unmarshal([]byte(got), &v); err != nil {
		t.Fatal(err)
	}
	if len(v) != 2 || len(v[0]) != 35 {
		t.Fatalf("got %d items with %d keys", len(v), len(v[0]))
	}
	if v[0]["oper_ram"] != nil || v[1]["oper_ram"] != float64(1024) || v[0]["disk.sizes"] == nil {
		t.Errorf("unexpected values: %v", v[0])
	}
	if math.IsNaN(v[1]["ctime"].(float64)) {
		t.Error("ctime")
	}
}
