package gateway

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// inputOf returns the request message of a gRPC method
// ("/pkg.Service/Method").
func inputOf(t *testing.T, fullMethod string) protoreflect.MessageDescriptor {
	t.Helper()
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method)).Input()
}

// TestQueryArgsSetOpcodeParams: every enum query argument names the opcode
// parameter it sets (sets_param), and that is resources.json's
// sets_opcode_param of the route's opcode; the csv integer argument has
// Ganeti's message.
func TestQueryArgsSetOpcodeParams(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", "resources.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Resources map[string]struct {
			Methods map[string]struct {
				JobOpcodes []string `json:"job_opcodes"`
				QueryArgs  []struct {
					Name  string `json:"name"`
					Parse string `json:"parse"`
					Sets  string `json:"sets_opcode_param"`
				} `json:"query_args"`
			} `json:"methods"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	routes, err := LoadRoutes()
	if err != nil {
		t.Fatal(err)
	}
	enums, csvInts := 0, 0
	for _, r := range routes.All() {
		res, ok := spec.Resources[specVarOf(r.Template)]
		if !ok {
			t.Fatalf("route %s not in the spec", r.Template)
		}
		for httpMethod, m := range r.Methods {
			sm := res.Methods[httpMethod]
			fields := inputOf(t, m.FullMethod).Fields()
			for i := 0; i < fields.Len(); i++ {
				fd := fields.Get(i)
				param, _ := proto.GetExtension(fd.Options(), rapiv2.E_SetsParam).(string)
				csvErr, _ := proto.GetExtension(fd.Options(), rapiv2.E_CsvIntError).(string)
				var arg *struct {
					Name  string `json:"name"`
					Parse string `json:"parse"`
					Sets  string `json:"sets_opcode_param"`
				}
				for n := range sm.QueryArgs {
					if sm.QueryArgs[n].Name == fd.JSONName() {
						arg = &sm.QueryArgs[n]
					}
				}
				where := httpMethod + " " + r.Template + " ?" + fd.JSONName()
				if fd.Kind() == protoreflect.EnumKind && arg != nil {
					enums++
					if len(sm.JobOpcodes) != 1 || param != sm.JobOpcodes[0]+"."+arg.Sets {
						t.Errorf("%s: sets_param %q, spec %v.%s", where, param, sm.JobOpcodes, arg.Sets)
					}
				} else if param != "" {
					t.Errorf("%s: sets_param %q on a field that is not an enum query argument", where, param)
				}
				if arg != nil && arg.Parse == "csv_int" {
					csvInts++
					if csvErr != "Invalid disk index passed" {
						t.Errorf("%s: csv_int_error %q", where, csvErr)
					}
				} else if csvErr != "" {
					t.Errorf("%s: csv_int_error on a field that is not a csv_int argument", where)
				}
			}
		}
	}
	if enums != 7 || csvInts != 1 {
		t.Errorf("%d enum and %d csv_int query arguments, want 7 and 1", enums, csvInts)
	}
}

// specVarOf turns a route template back into the spec's path.
func specVarOf(tmpl string) string {
	var b strings.Builder
	for _, seg := range strings.Split(tmpl, "/") {
		if b.Len() > 0 || seg != "" {
			b.WriteString("/")
		}
		if strings.HasPrefix(seg, "{") {
			seg = "[" + strings.Trim(seg, "{}") + "]"
		}
		b.WriteString(seg)
	}
	if tmpl == "/" {
		return "/"
	}
	return b.String()
}

// TestPyRepr checks Python's repr() of the str values int() reports.
func TestPyRepr(t *testing.T) {
	for in, want := range map[string]string{
		"a": `'a'`, "it's": `"it's"`, `x"y'z`: `'x"y\'z'`, "\u00a0\u00ad\u00e9\u200b\U0001F600\x7f\t": `'\xa0\xadé\u200b😀\x7f\t'`,
		"\u2028": `'\u2028'`, `a\b`: `'a\\b'`, "": `''`,
	} {
		if got := pyRepr(in, 200); got != want {
			t.Errorf("pyRepr(%q) = %s, want %s", in, got, want)
		}
	}
	if got := pyRepr(strings.Repeat("a", 300), 200); len(got) != 200 || !strings.HasPrefix(got, "'aaa") {
		t.Errorf("long repr %q", got)
	}
}
