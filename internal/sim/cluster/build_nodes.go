package cluster

import (
	"fmt"
	"net/netip"
	"strings"
)

// Seeding: node groups, nodes, the master and its candidates, OSes.

func (b *builder) buildGroups() error {
	decls := b.f.Groups
	if len(decls) == 0 {
		decls = []FileGroup{{Name: "default"}}
	}
	for i, fg := range decls {
		what := fmt.Sprintf("groups[%d]", i)
		if err := checkObjectName(what, fg.Name); err != nil {
			return err
		}
		what = fmt.Sprintf("group %s", fg.Name)
		if _, dup := b.groups[fg.Name]; dup {
			return fmt.Errorf("%s: declared twice", what)
		}
		m, err := b.meta(what, fg.FileMeta)
		if err != nil {
			return err
		}
		g := &Group{
			Name: fg.Name, UUID: m.uuid, CTime: m.ctime, MTime: m.mtime, SerialNo: m.serial, Tags: m.tags,
			AllocPolicy: fg.AllocPolicy, Networks: map[string]Params{},
		}
		if g.AllocPolicy == "" {
			g.AllocPolicy = "preferred"
		}
		if !contains(allocPolicies, g.AllocPolicy) {
			return fmt.Errorf("%s: alloc_policy must be one of %s", what, strings.Join(allocPolicies, ", "))
		}
		if g.NDParams, err = checkParams(fg.NDParams, defaultNDParams); err != nil {
			return fmt.Errorf("%s: ndparams: %w", what, err)
		}
		if g.IPolicy, err = checkIPolicy(fg.IPolicy); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if err := checkIPolicyStd(fillIPolicy(b.cfg.Cluster.IPolicy, g.IPolicy)); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if g.DiskParams, err = checkDiskParams(what, fg.DiskParams); err != nil {
			return err
		}
		b.groups[g.Name] = g
		b.cfg.Groups[g.UUID] = g
	}
	return nil
}

func (b *builder) buildNodes() error {
	if len(b.f.Nodes) == 0 {
		return fmt.Errorf("no nodes declared")
	}
	firstGroup := "default"
	if len(b.f.Groups) > 0 {
		firstGroup = b.f.Groups[0].Name
	}
	pips := map[netip.Addr]string{}
	for i, fn := range b.f.Nodes {
		if err := checkHostName(fmt.Sprintf("nodes[%d]", i), fn.Name); err != nil {
			return err
		}
		what := "node " + fn.Name
		if _, dup := b.nodes[fn.Name]; dup {
			return fmt.Errorf("%s: declared twice", what)
		}
		m, err := b.meta(what, fn.FileMeta)
		if err != nil {
			return err
		}
		groupName := fn.Group
		if groupName == "" {
			groupName = firstGroup
		}
		g, ok := b.groups[groupName]
		if !ok {
			return fmt.Errorf("%s: unknown group %q", what, groupName)
		}
		n := &Node{
			Name: fn.Name, UUID: m.uuid, CTime: m.ctime, MTime: m.mtime, SerialNo: m.serial, Tags: m.tags,
			Group:         g.UUID,
			Drained:       fn.Drained,
			Offline:       fn.Offline,
			MasterCapable: orDefault(fn.MasterCapable, true),
			VMCapable:     orDefault(fn.VMCapable, true),
			Powered:       orDefault(fn.Powered, true),
			BootID:        strings.ToLower(fn.BootID),
		}
		pip, err := netip.ParseAddr(fn.PIP)
		if err != nil {
			return fmt.Errorf("%s: invalid pip %q", what, fn.PIP)
		}
		if other, dup := pips[pip]; dup {
			return fmt.Errorf("%s: pip %s is already used by node %s", what, pip, other)
		}
		pips[pip] = fn.Name
		n.PrimaryIP = pip.String()
		n.SecondaryIP = n.PrimaryIP
		if fn.SIP != "" {
			sip, err := netip.ParseAddr(fn.SIP)
			if err != nil {
				return fmt.Errorf("%s: invalid sip %q", what, fn.SIP)
			}
			n.SecondaryIP = sip.String()
		}
		if n.BootID == "" {
			n.BootID = newUUID(b.ids)
		} else if !uuidRe.MatchString(n.BootID) {
			return fmt.Errorf("%s: bootid must be a UUID", what)
		}
		if n.NDParams, err = checkParams(fn.NDParams, defaultNDParams); err != nil {
			return fmt.Errorf("%s: ndparams: %w", what, err)
		}
		if n.MemTotal, err = checkSize(what+": mtotal", fn.MTotal, 16384, 1); err != nil {
			return err
		}
		if n.MemNode, err = checkSize(what+": mnode", fn.MNode, 512, 0); err != nil {
			return err
		}
		if n.MemNode > n.MemTotal {
			return fmt.Errorf("%s: mnode (%d) is more than mtotal (%d)", what, n.MemNode, n.MemTotal)
		}
		if n.DiskTotal, err = checkSize(what+": dtotal", fn.DTotal, 102400, 0); err != nil {
			return err
		}
		if n.CPUTotal, err = checkCount(what+": ctotal", fn.CTotal, 4, 1); err != nil {
			return err
		}
		if n.CPUNodeOS, err = checkCount(what+": cnos", fn.CNOs, 1, 0); err != nil {
			return err
		}
		if n.CPUNodes, err = checkCount(what+": cnodes", fn.CNodes, 1, 1); err != nil {
			return err
		}
		if n.CPUSockets, err = checkCount(what+": csockets", fn.CSockets, 1, 1); err != nil {
			return err
		}
		if n.Spindles, err = checkCount(what+": spindles", fn.Spindles, 1, 0); err != nil {
			return err
		}
		flags := 0
		for _, f := range []bool{orDefault(fn.MasterCandidate, false), fn.Drained, fn.Offline} {
			if f {
				flags++
			}
		}
		if flags > 1 {
			return fmt.Errorf("%s: only one of master_candidate, drained and offline may be set", what)
		}
		if orDefault(fn.MasterCandidate, false) && !n.MasterCapable {
			return fmt.Errorf("%s: a node that is not master_capable cannot be a master candidate", what)
		}
		b.nodes[n.Name] = n
		b.nodeIdx[n.Name] = i
		b.cfg.Nodes[n.UUID] = n
	}
	return nil
}

// buildMaster resolves the master node and the master candidates: the master
// is always one; nodes that do not say otherwise become candidates, in file
// order, until candidate_pool_size is reached.
func (b *builder) buildMaster() error {
	c := b.cfg.Cluster
	master, ok := b.nodes[b.f.Cluster.MasterNode]
	if b.f.Cluster.MasterNode == "" {
		return fmt.Errorf("cluster: missing master_node")
	}
	if !ok {
		return fmt.Errorf("cluster: master_node %q is not a declared node", b.f.Cluster.MasterNode)
	}
	fn := b.f.Nodes[b.nodeIdx[master.Name]]
	if master.Offline || master.Drained || !master.MasterCapable || (fn.MasterCandidate != nil && !*fn.MasterCandidate) {
		return fmt.Errorf("node %s: the master node must be a master-capable master candidate, neither drained nor offline", master.Name)
	}
	c.MasterNode = master.UUID
	master.MasterCandidate = true
	count := int64(0)
	for _, fn := range b.f.Nodes {
		n := b.nodes[fn.Name]
		if n == master || orDefault(fn.MasterCandidate, false) {
			n.MasterCandidate = true
			count++
		}
	}
	for _, fn := range b.f.Nodes {
		n := b.nodes[fn.Name]
		if fn.MasterCandidate == nil && !n.MasterCandidate && n.MasterCapable && !n.Drained && !n.Offline &&
			count < c.CandidatePoolSize {
			n.MasterCandidate = true
			count++
		}
	}
	return nil
}

func (b *builder) buildOSes() error {
	decls := b.f.OSes
	if !b.f.hasOSes && len(decls) == 0 {
		decls = []FileOS{{Name: "noop"}}
	}
	for i, fo := range decls {
		if fo.Name == "" || len(fo.Name) > maxNameLen || !osRe.MatchString(fo.Name) {
			return fmt.Errorf("oses[%d]: invalid OS name %q", i, fo.Name)
		}
		if _, dup := b.cfg.OSes[fo.Name]; dup {
			return fmt.Errorf("os %s: declared twice", fo.Name)
		}
		if len(fo.Variants) > maxVariants {
			return fmt.Errorf("os %s: more than %d variants", fo.Name, maxVariants)
		}
		seen := map[string]bool{}
		for _, v := range fo.Variants {
			if v == "" || len(v) > maxNameLen || !osRe.MatchString(v) || seen[v] {
				return fmt.Errorf("os %s: invalid or duplicate variant %q", fo.Name, v)
			}
			seen[v] = true
		}
		b.cfg.OSes[fo.Name] = &OS{Name: fo.Name, Variants: nonNil(cloneStrings(fo.Variants))}
	}
	return nil
}
