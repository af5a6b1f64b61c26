package lu

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// clusterObjectExecutors are the executors of the cluster, node, node
// group and network opcodes.
func clusterObjectExecutors() map[string]opexec.Executor {
	return map[string]opexec.Executor{
		opKey(&rapiv2.OpOsDiagnose{}): OsDiagnose{},

		opKey(&rapiv2.OpGroupAdd{}):         GroupAdd{},
		opKey(&rapiv2.OpGroupRename{}):      GroupRename{},
		opKey(&rapiv2.OpGroupSetParams{}):   GroupSetParams{},
		opKey(&rapiv2.OpGroupRemove{}):      GroupRemove{},
		opKey(&rapiv2.OpGroupAssignNodes{}): GroupAssignNodes{},

		opKey(&rapiv2.OpNetworkAdd{}):        NetworkAdd{},
		opKey(&rapiv2.OpNetworkConnect{}):    NetworkConnect{},
		opKey(&rapiv2.OpNetworkDisconnect{}): NetworkDisconnect{},
		opKey(&rapiv2.OpNetworkSetParams{}):  NetworkSetParams{},
		opKey(&rapiv2.OpNetworkRemove{}):     NetworkRemove{},

		opKey(&rapiv2.OpNodeSetParams{}):     NodeSetParams{},
		opKey(&rapiv2.OpNodeQueryStorage{}):  NodeQueryStorage{},
		opKey(&rapiv2.OpNodeEvacuate{}):      NodeEvacuate{},
		opKey(&rapiv2.OpNodeMigrate{}):       NodeMigrate{},
		opKey(&rapiv2.OpNodeModifyStorage{}): NodeModifyStorage{},
		opKey(&rapiv2.OpRepairNodeStorage{}): RepairNodeStorage{},
		opKey(&rapiv2.OpNodePowercycle{}):    NodePowercycle{},

		opKey(&rapiv2.OpClusterSetParams{}):  ClusterSetParams{},
		opKey(&rapiv2.OpClusterRedistConf{}): ClusterRedistConf{},
	}
}

func obTypeError(format string, args ...any) error {
	return &errs.Error{Class: "TypeEnforcementError", Msg: fmt.Sprintf(format, args...)}
}

// obUnexpected reports an opcode message an executor does not handle.
func obUnexpected(op any) error { return errs.Exec("Unexpected opcode %T", op) }

// obParams converts an opcode's dictionary parameter; nil stays nil.
func obParams(s *structpb.Struct) cluster.Params {
	if s == nil {
		return nil
	}
	return s.AsMap()
}

// obUpdatedParams is Ganeti's GetUpdatedParams: old overlaid with upd, where
// the value "default" (and, with useNone, null) removes the key.
func obUpdatedParams(old, upd cluster.Params, useNone bool) cluster.Params {
	out := cluster.CloneParams(old)
	if out == nil {
		out = cluster.Params{}
	}
	for k, v := range upd {
		if s, ok := v.(string); ok && s == "default" {
			delete(out, k)
			continue
		}
		if v == nil && useNone {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// obLookupGroup is Ganeti's LookupNodeGroup on a snapshot.
func obLookupGroup(st *cluster.State, name string) (string, error) {
	uuid, ok := st.GroupUUID(name)
	if !ok {
		return "", errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", name)
	}
	return uuid, nil
}

// obLookupNetwork is Ganeti's LookupNetwork on a snapshot.
func obLookupNetwork(st *cluster.State, name string) (string, error) {
	uuid, ok := st.NetworkUUID(name)
	if !ok {
		return "", errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", name)
	}
	return uuid, nil
}

// obGroup finds a group of the configuration being changed by name or
// UUID.
func obGroup(cfg *cluster.Config, name string) *cluster.Group {
	return findByName(cfg.Groups, name, func(g *cluster.Group) string { return g.Name }, false)
}

func obNetwork(cfg *cluster.Config, name string) *cluster.Network {
	return findByName(cfg.Networks, name, func(n *cluster.Network) string { return n.Name }, false)
}

func obNode(cfg *cluster.Config, name string) *cluster.Node {
	return findByName(cfg.Nodes, name, func(n *cluster.Node) string { return n.Name }, true)
}

// obBumpCluster is what Ganeti's ConfigWriter does to the cluster
// object when nodes, groups or networks are added, removed or reassigned.
func obBumpCluster(x *opexec.ExecContext) {
	c := x.Config.EditCluster()
	c.SerialNo++
	c.MTime = x.Timestamp()
}

// obCommaJoin is Ganeti's utils.CommaJoin.
func obCommaJoin(items []string) string { return strings.Join(items, ", ") }

// obPyRepr renders a JSON-like value as Python's str() would (the change
// lists of the *_SET_PARAMS opcodes hold str(dict)). Dictionary keys are
// sorted.
func obPyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return obPyQuote(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e16 {
			return strconv.FormatFloat(x, 'f', 1, 64)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []string:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = obPyQuote(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = obPyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = obPyQuote(k) + ": " + obPyRepr(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

func obPyQuote(s string) string {
	q := "'"
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = `"`
	}
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\t", `\t`, "\r", `\r`)
	s = r.Replace(s)
	if q == "'" {
		s = strings.ReplaceAll(s, "'", `\'`)
	}
	return q + s + q
}

// obChanges is the [[name, value], ...] result of the *_SET_PARAMS
// opcodes.
type obChanges []any

func (c *obChanges) add(name string, value any) { *c = append(*c, []any{name, value}) }

func (c obChanges) result() any {
	if c == nil {
		return []any{}
	}
	return []any(c)
}
