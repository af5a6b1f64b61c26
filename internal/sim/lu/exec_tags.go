package lu

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// DefaultExecutors returns the executors of the opcodes implemented so far.
func DefaultExecutors() map[string]opexec.Executor {
	m := map[string]opexec.Executor{
		opKey(&rapiv2.OpTagsSet{}):   TagsSet{},
		opKey(&rapiv2.OpTagsDel{}):   TagsDel{},
		opKey(&rapiv2.OpTestDelay{}): TestDelay{},
	}
	for _, more := range []map[string]opexec.Executor{instanceExecutors(), clusterObjectExecutors()} {
		for id, ex := range more {
			m[id] = ex
		}
	}
	return m
}

// ValidateTag is Ganeti's TaggableObject.ValidateTag (see
// cluster.ValidateTag, the one rule every tagged object goes through).
func ValidateTag(tag string) error { return cluster.ValidateTag(tag) }

// TagsSet implements OP_TAGS_SET (Ganeti's LUTagsSet).
type TagsSet struct{}

// TagsDel implements OP_TAGS_DEL (Ganeti's LUTagsDel).
type TagsDel struct{}

type tagsOp struct {
	kind string
	name string
	tags []string
}

func tagsParams(op proto.Message) (tagsOp, error) {
	var kind *rapiv2.TagKind
	var name *string
	var t tagsOp
	switch m := op.(type) {
	case *rapiv2.OpTagsSet:
		kind, name, t.tags = m.Kind, m.Name, m.GetTags()
	case *rapiv2.OpTagsDel:
		kind, name, t.tags = m.Kind, m.Name, m.GetTags()
	default:
		return t, errs.Exec("Unexpected opcode %T", op)
	}
	t.name = "None"
	if name != nil {
		t.name = *name
	}
	if kind == nil {
		return t, errs.Prereq(errs.CodeInval, "Wrong tag type requested (None)")
	}
	s, ok := legacyenum.Of(kind)
	if !ok {
		return t, errs.Prereq(errs.CodeInval, "Wrong tag type requested (%s)", kind.String())
	}
	t.kind = s
	return t, nil
}

// tagLocks is TagsLU.ExpandNames: the lock on the tagged object.
func tagLocks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	t, err := tagsParams(op)
	if err != nil {
		return nil, err
	}
	switch t.kind {
	case cluster.TagCluster:
		// Ganeti takes no lock for cluster tags ("FIXME: Acquire BGL").
		return nil, nil
	case cluster.TagNode:
		uuid, err := lookupState(st, "node", t.name, "uuid")
		if err != nil {
			return nil, err
		}
		return []opexec.Lock{{Level: opexec.LevelNode, Name: uuid, Mode: opexec.Exclusive}}, nil
	case cluster.TagInstance:
		full, err := lookupState(st, "instance", t.name, "name")
		if err != nil {
			return nil, err
		}
		return []opexec.Lock{{Level: opexec.LevelInstance, Name: full, Mode: opexec.Exclusive}}, nil
	case cluster.TagNodeGroup:
		uuid, err := lookupState(st, "group", t.name, "uuid")
		if err != nil {
			return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", t.name)
		}
		return []opexec.Lock{{Level: opexec.LevelNodeGroup, Name: uuid, Mode: opexec.Exclusive}}, nil
	case cluster.TagNetwork:
		uuid, err := lookupState(st, "network", t.name, "uuid")
		if err != nil {
			return nil, errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", t.name)
		}
		return []opexec.Lock{{Level: opexec.LevelNetwork, Name: uuid, Mode: opexec.Exclusive}}, nil
	}
	return nil, errs.Prereq(errs.CodeInval, "Wrong tag type requested (%s)", t.kind)
}

// lookupState resolves an object of the snapshot to one of its fields.
func lookupState(st *cluster.State, resource, name, fieldName string) (string, error) {
	cells, err := st.Get(resource, name, []string{fieldName})
	if err != nil {
		return "", err
	}
	s, _ := cells[0].Value.(string)
	return s, nil
}

// tagTarget is the object whose tags an opcode changes, inside Exec.
type tagTarget struct {
	tags  []string
	apply func(tags []string) // writes the new tags, serial and mtime
}

// findTarget is TagsLU.CheckPrereq on cfg; the target's apply changes
// cfg (now is the timestamp of the change).
func findTarget(cfg *cluster.Config, now float64, t tagsOp) (*tagTarget, error) {
	bumpCluster := func() {
		c := cfg.EditCluster()
		c.SerialNo++
		c.MTime = now
	}
	switch t.kind {
	case cluster.TagCluster:
		return &tagTarget{tags: cfg.Cluster.Tags, apply: func(tags []string) {
			c := cfg.EditCluster()
			c.Tags = tags
			c.SerialNo++
			c.MTime = now
		}}, nil
	case cluster.TagNode:
		n := findByName(cfg.Nodes, t.name, func(n *cluster.Node) string { return n.Name }, true)
		if n == nil {
			return nil, errs.NotFound("Node", t.name)
		}
		return &tagTarget{tags: n.Tags, apply: func(tags []string) {
			e := cfg.EditNode(n.UUID)
			e.Tags = tags
			e.SerialNo++
			e.MTime = now
			bumpCluster() // Ganeti's ConfigWriter.Update does so for nodes
		}}, nil
	case cluster.TagInstance:
		i := findByName(cfg.Instances, t.name, func(i *cluster.Instance) string { return i.Name }, true)
		if i == nil {
			return nil, errs.NotFound("Instance", t.name)
		}
		return &tagTarget{tags: i.Tags, apply: func(tags []string) {
			e := cfg.EditInstance(i.UUID)
			e.Tags = tags
			e.SerialNo++
			e.MTime = now
		}}, nil
	case cluster.TagNodeGroup:
		g := findByName(cfg.Groups, t.name, func(g *cluster.Group) string { return g.Name }, false)
		if g == nil {
			return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", t.name)
		}
		return &tagTarget{tags: g.Tags, apply: func(tags []string) {
			e := cfg.EditGroup(g.UUID)
			e.Tags = tags
			e.SerialNo++
			e.MTime = now
		}}, nil
	case cluster.TagNetwork:
		n := findByName(cfg.Networks, t.name, func(n *cluster.Network) string { return n.Name }, false)
		if n == nil {
			return nil, errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", t.name)
		}
		return &tagTarget{tags: n.Tags, apply: func(tags []string) {
			e := cfg.EditNetwork(n.UUID)
			e.Tags = tags
			e.SerialNo++
			e.MTime = now
		}}, nil
	}
	return nil, errs.Prereq(errs.CodeInval, "Wrong tag type requested (%s)", t.kind)
}

// findByName finds an object by exact name or UUID and, with short, by a
// unique short name ("node1" for "node1.example.com"), as Ganeti's name
// expansion.
func findByName[T any](m map[string]*T, name string, nameOf func(*T) string, short bool) *T {
	if o, ok := m[name]; ok {
		return o
	}
	var found *T
	for _, o := range m {
		n := nameOf(o)
		if n == name {
			return o
		}
		if short && strings.HasPrefix(n, name+".") {
			if found != nil {
				return nil
			}
			found = o
		}
	}
	return found
}

// Locks implements Executor.
func (TagsSet) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return tagLocks(op, st)
}

// Exec implements Executor.
func (t TagsSet) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(t, x, op)
}

// Check implements opexec.Phased: TagsLU.CheckPrereq and LUTagsSet's
// tag validation, on the snapshot. The plan is the checked opcode.
func (TagsSet) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	t, err := tagsParams(op)
	if err != nil {
		return nil, err
	}
	if _, err := findTarget(c.Snapshot, 0, t); err != nil {
		return nil, err
	}
	for _, tag := range t.tags {
		if err := ValidateTag(tag); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Apply implements opexec.Phased: LUTagsSet.Exec.
func (TagsSet) Apply(x *opexec.ExecContext, _ proto.Message, plan any) (any, error) {
	t := plan.(tagsOp)
	target, err := findTarget(x.Config, x.Timestamp(), t)
	if err != nil {
		return nil, err
	}
	if x.DryRun {
		return nil, nil
	}
	tags, err := cluster.AddTags(target.tags, t.tags)
	if err != nil {
		// LUTagsSet.Exec: "Error while setting tag: <TagError>".
		msg := err.Error()
		if e, ok := errs.As(err); ok {
			msg = e.Msg
		}
		return nil, errs.Exec("Error while setting tag: %s", msg)
	}
	target.apply(tags)
	return nil, nil
}

// Locks implements Executor.
func (TagsDel) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	return tagLocks(op, st)
}

// Exec implements Executor.
func (t TagsDel) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(t, x, op)
}

// Check implements opexec.Phased: LUTagsDel.CheckPrereq on the snapshot
// (the tags exist on their object). The plan is the checked opcode.
func (TagsDel) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	t, err := tagsParams(op)
	if err != nil {
		return nil, err
	}
	target, err := findTarget(c.Snapshot, 0, t)
	if err != nil {
		return nil, err
	}
	for _, tag := range t.tags {
		if err := ValidateTag(tag); err != nil {
			return nil, err
		}
	}
	if err := tagsMissing(target.tags, t.tags); err != nil {
		return nil, err
	}
	return t, nil
}

// tagsMissing is LUTagsDel's check that every tag to delete is set.
func tagsMissing(have, del []string) error {
	var missing []string
	for _, tag := range del {
		if !slices.Contains(have, tag) && !slices.Contains(missing, tag) {
			missing = append(missing, tag)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	quoted := make([]string, len(missing))
	for i, m := range missing {
		quoted[i] = "'" + m + "'"
	}
	return errs.Prereq(errs.CodeNoEnt, "Tag(s) %s not found", strings.Join(quoted, ", "))
}

// Apply implements opexec.Phased: LUTagsDel.Exec. The locks keep the
// tags as Check saw them; the check is repeated on the configuration it
// changes all the same.
func (TagsDel) Apply(x *opexec.ExecContext, _ proto.Message, plan any) (any, error) {
	t := plan.(tagsOp)
	target, err := findTarget(x.Config, x.Timestamp(), t)
	if err != nil {
		return nil, err
	}
	if err := tagsMissing(target.tags, t.tags); err != nil {
		return nil, err
	}
	if x.DryRun {
		return nil, nil
	}
	tags := slices.DeleteFunc(slices.Clone(target.tags), func(s string) bool { return slices.Contains(t.tags, s) })
	target.apply(tags)
	return nil, nil
}
