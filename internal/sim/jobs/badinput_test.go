package jobs

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

// Issue 10, items 9-11: bad input that would change state. Each case is
// what an executor receives (the engine path, so it holds for any
// surface); a failing case must leave the configuration exactly as it was.

// configJSON is the whole configuration, for before/after comparisons.
func (v *env) configJSON() string {
	v.t.Helper()
	return jsonOf(v.t, v.model.State().Config())
}

type badCase struct {
	name   string
	ops    []proto.Message
	result string // the failed opcode's opresult, as JSON
}

// runBad runs each case, checks the job failed with result and that the
// configuration did not change.
func runBad(t *testing.T, v *env, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := v.configJSON()
			j := v.run(c.ops...)
			if j.Status != StatusError {
				t.Fatalf("status %s (%s), want error", j.Status, jsonOf(t, j.OpResult))
			}
			if got := jsonOf(t, j.OpResult[len(j.OpResult)-1]); got != c.result {
				if len(got) > 300 {
					got = got[:300] + "..."
				}
				t.Errorf("result %s\n        want %s", got, c.result)
			}
			if after := v.configJSON(); after != before {
				t.Errorf("the configuration changed")
			}
		})
	}
}

func TestInstanceNameRules(t *testing.T) {
	v := newInstEnv(t)
	huge := strings.Repeat("x", 1_000_000)
	prereq := func(msg string) string {
		return jsonOf(t, []any{"OpPrereqError", []any{msg, "wrong_input"}})
	}
	rename := func(name string, nameCheck bool) *rapiv2.OpInstanceRename {
		return &rapiv2.OpInstanceRename{InstanceName: proto.String("inst2.example.com"), NewName: proto.String(name),
			NameCheck: proto.Bool(nameCheck), IpCheck: proto.Bool(false)}
	}
	// LUInstanceCreate.CheckArguments: Hostname.GetNormalizedName.
	runBad(t, v, []badCase{
		{"create empty", []proto.Message{create("", "diskless")}, prereq("Invalid hostname ''")},
		{"create with a space", []proto.Message{create("a b", "diskless")}, prereq("Invalid hostname 'a b'")},
		{"create with a slash", []proto.Message{create("A/B", "diskless")}, prereq("Invalid hostname 'a/b'")},
		{"create dot dot", []proto.Message{create("..", "diskless")}, prereq("Invalid hostname '..'")},
		{"create empty label", []proto.Message{create("inst2..example.com", "diskless")}, prereq("Invalid hostname 'inst2..example.com'")},
		{"create unicode", []proto.Message{create("tägé", "diskless")}, prereq("Invalid hostname 'tägé'")},
		{"create 256 characters", []proto.Message{create(strings.Repeat("a", 256), "diskless")}, prereq("Invalid hostname '" + strings.Repeat("a", 256) + "'")},
		{"create 1,000,000 characters", []proto.Message{create(huge, "diskless")}, prereq("Invalid hostname '" + huge + "'")},
		// CheckHostnameSane: the resolved (normalized) name must look like
		// the given one.
		{"rename upper case", []proto.Message{rename("Inst2.example.com", true)},
			prereq("Resolved hostname 'inst2.example.com' does not look the same as given hostname 'Inst2.example.com'")},
		{"rename with a space", []proto.Message{rename("a b", true)}, prereq("Invalid hostname 'a b'")},
		{"rename with a slash, no name check", []proto.Message{rename("x/y", false)}, prereq("Invalid hostname 'x/y'")},
		{"rename 1,000,000 characters, no name check", []proto.Message{rename(huge, false)}, prereq("Invalid hostname '" + huge + "'")},
	})

	// Upper case and trailing dots are normalized, and the instance is
	// addressable by its normalized name.
	j := v.runOK(create("INST2.Example.COM.", "diskless"))
	if got := jsonOf(t, j.OpResult[0]); got != `["node1.example.com"]` {
		t.Errorf("create result %s", got)
	}
	if got := v.instField("inst2.example.com", "name"); got[0] != "inst2.example.com" {
		t.Errorf("instance name %v", got[0])
	}
	v.runOK(&rapiv2.OpInstanceShutdown{InstanceName: proto.String("inst2.example.com")})
	// Without name_check the new name is normalized too (Ganeti would keep
	// it as given).
	j = v.runOK(rename("Inst3.Example.com", false))
	if got := jsonOf(t, j.OpResult); got != `["inst3.example.com"]` {
		t.Errorf("rename result %s", got)
	}
	v.runOK(&rapiv2.OpInstanceRemove{InstanceName: proto.String("inst3.example.com")})
	for _, name := range []string{"inst2.example.com", "inst3.example.com"} {
		if _, err := v.model.State().Get("instance", name, []string{"name"}); err == nil {
			t.Errorf("%s still there after the removal", name)
		}
	}
}

func TestObjectNameRules(t *testing.T) {
	v := newInstEnv(t)
	ps := proto.String
	runBad(t, v, []badCase{
		{"group with a space", []proto.Message{&rapiv2.OpGroupAdd{GroupName: ps("a b")}},
			jsonOf(t, []any{"OpPrereqError", []any{"Invalid node group name 'a b'", "wrong_input"}})},
		{"group dot dot", []proto.Message{&rapiv2.OpGroupAdd{GroupName: ps("..")}},
			jsonOf(t, []any{"OpPrereqError", []any{"Invalid node group name '..'", "wrong_input"}})},
		{"group rename to a path", []proto.Message{&rapiv2.OpGroupRename{GroupName: ps("default"), NewName: ps("a/b")}},
			jsonOf(t, []any{"OpPrereqError", []any{"Invalid node group name 'a/b'", "wrong_input"}})},
		{"network of 40,000 characters", []proto.Message{&rapiv2.OpNetworkAdd{NetworkName: ps(strings.Repeat("n", 40000)), Network: ps("10.9.0.0/24")}},
			jsonOf(t, []any{"OpPrereqError", []any{"Invalid network name '" + strings.Repeat("n", 40000) + "'", "wrong_input"}})},
		{"network with unicode", []proto.Message{&rapiv2.OpNetworkAdd{NetworkName: ps("nét"), Network: ps("10.9.0.0/24")}},
			jsonOf(t, []any{"OpPrereqError", []any{"Invalid network name 'nét'", "wrong_input"}})},
	})
	v.runOK(&rapiv2.OpGroupAdd{GroupName: ps("Rack-2_b.x")})
	v.runOK(&rapiv2.OpNetworkAdd{NetworkName: ps("Net-2"), Network: ps("10.9.0.0/24")})
}

func TestTagRules(t *testing.T) {
	v := newInstEnv(t)
	many := make([]string, 4096+1) // Ganeti's MAX_TAGS_PER_OBJ, plus one
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	tagErr := func(msg string) string { return jsonOf(t, []any{"TagError", []any{msg}}) }
	withTags := func(op *rapiv2.OpInstanceCreate, tags ...string) *rapiv2.OpInstanceCreate {
		op.Tags = tags
		return op
	}
	ps := proto.String
	runBad(t, v, []badCase{
		{"create with a bad tag", []proto.Message{withTags(create("inst2.example.com", "diskless"), "ok", "bad tag")},
			tagErr("Tag contains invalid characters")},
		{"create with too many tags", []proto.Message{withTags(create("inst2.example.com", "diskless"), many...)}, tagErr("Too many tags")},
		{"network with too many tags", []proto.Message{&rapiv2.OpNetworkAdd{NetworkName: ps("net2"), Network: ps("10.9.0.0/24"), Tags: many}},
			tagErr("Too many tags")},
		{"set a 129-character tag", []proto.Message{tagsSet(rapiv2.TagKind_TAG_KIND_CLUSTER, "", strings.Repeat("ä", 129)).GetTagsSet()},
			tagErr("Tag too long (>128 characters)")},
		{"set too many tags", []proto.Message{tagsSet(rapiv2.TagKind_TAG_KIND_INSTANCE, "inst1.example.com", many...).GetTagsSet()},
			jsonOf(t, []any{"OpExecError", []any{"Error while setting tag: Too many tags"}})},
	})
	// Python 3's \w is Unicode: Ganeti accepts these, and MAX_TAG_LEN
	// counts characters, not bytes.
	unicode := []string{"tägé", "日本語", strings.Repeat("ä", 128)}
	v.runOK(tagsSet(rapiv2.TagKind_TAG_KIND_CLUSTER, "", unicode...).GetTagsSet())
	v.runOK(withTags(create("inst2.example.com", "diskless"), "tägé", "tägé", "b"))
	if got := jsonOf(t, v.instField("inst2.example.com", "tags")[0]); got != `["b","tägé"]` {
		t.Errorf("instance tags %s", got)
	}
	v.runOK(tagsDel(rapiv2.TagKind_TAG_KIND_CLUSTER, "", "tägé").GetTagsDel())
}

func TestSizeRules(t *testing.T) {
	v := newInstEnv(t)
	withBE := func(op *rapiv2.OpInstanceCreate, be map[string]any) *rapiv2.OpInstanceCreate {
		op.Beparams = mustStruct(be)
		op.IgnoreIpolicy = proto.Bool(true)
		return op
	}
	typeErr := func(msg string) string { return jsonOf(t, []any{"TypeEnforcementError", []any{msg}}) }
	grow := func(amount int64, absolute bool) *rapiv2.OpInstanceGrowDisk {
		return &rapiv2.OpInstanceGrowDisk{InstanceName: proto.String("inst2.example.com"), Disk: proto.Int64(0),
			Amount: proto.Int64(amount), Absolute: proto.Bool(absolute), WaitForSync: proto.Bool(false)}
	}
	v.runOK(create("inst2.example.com", "file", 1024))
	mfree, dfree := v.nodeFree("node1.example.com")
	runBad(t, v, []badCase{
		// Ganeti's ForceDictType: ParseUnit(str(value)).
		{"memory 1e30", []proto.Message{withBE(create("inst3.example.com", "diskless"), map[string]any{"memory": 1e30})},
			typeErr("'minmem' (value 1e+30) is not a valid size. error: Invalid format")},
		{"memory -1", []proto.Message{withBE(create("inst3.example.com", "diskless"), map[string]any{"memory": -1})},
			typeErr("'minmem' (value -1) is not a valid size. error: Invalid format")},
		{"maxmem 2^62", []proto.Message{withBE(create("inst3.example.com", "diskless"), map[string]any{"maxmem": float64(1 << 62)})},
			typeErr("'maxmem' (value 4.611686018427388e+18) is not a valid size. error: Invalid format")},
		{"maxmem 2 EiB", []proto.Message{withBE(create("inst3.example.com", "diskless"), map[string]any{"maxmem": "2097152t"})},
			typeErr("'maxmem' (value 2097152t) is not a valid size. error: Size too large (at most 1099511627776 MiB)")},
		{"vcpus 1e30", []proto.Message{withBE(create("inst3.example.com", "diskless"), map[string]any{"vcpus": 1e30})},
			typeErr("'vcpus' (value 1e+30) is not a valid integer")},
		{"disk size -1", []proto.Message{create("inst3.example.com", "file", -1)},
			typeErr("'size' (value -1) is not a valid size. error: Invalid format")},
		{"disk size 1e30", []proto.Message{func() proto.Message {
			op := create("inst3.example.com", "file")
			op.Disks = append(op.Disks, mustStruct(map[string]any{"size": 1e30}))
			return op
		}()}, typeErr("'size' (value 1e+30) is not a valid size. error: Invalid format")},
		{"modify memory 1e30", []proto.Message{&rapiv2.OpInstanceSetParams{InstanceName: proto.String("inst1.example.com"),
			Beparams: mustStruct(map[string]any{"memory": 1e30})}},
			typeErr("'minmem' (value 1e+30) is not a valid size. error: Invalid format")},
		// Beyond Ganeti: a disk never grows past 1 EiB, so sizes never
		// overflow.
		{"grow by 2^63-1", []proto.Message{grow(math.MaxInt64, false)},
			jsonOf(t, []any{"OpPrereqError", []any{"Requested disk size exceeds the largest supported one (1048576.0T)", "wrong_input"}})},
		{"grow to 2^63-1", []proto.Message{grow(math.MaxInt64, true)},
			jsonOf(t, []any{"OpPrereqError", []any{"Requested disk size exceeds the largest supported one (1048576.0T)", "wrong_input"}})},
	})
	if m, d := v.nodeFree("node1.example.com"); m != mfree || d != dfree {
		t.Errorf("node1 mfree/dfree %d/%d, were %d/%d", m, d, mfree, dfree)
	}
	// Sizes are rounded up to a multiple of 4 MiB, as ParseUnit does.
	v.runOK(withBE(create("inst3.example.com", "file", 1025), map[string]any{"memory": 513}))
	if got := jsonOf(t, v.instField("inst3.example.com", "be/maxmem", "be/minmem", "disk.sizes")); got != `[516,516,[1028]]` {
		t.Errorf("inst3 maxmem, minmem, disk sizes %s", got)
	}
}
