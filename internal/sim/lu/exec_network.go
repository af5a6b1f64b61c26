package lu

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/opexec"
)

// NetworkAdd implements OP_NETWORK_ADD (Ganeti's LUNetworkAdd).
type NetworkAdd struct{}

// NetworkSetParams implements OP_NETWORK_SET_PARAMS (LUNetworkSetParams).
type NetworkSetParams struct{}

// NetworkRemove implements OP_NETWORK_REMOVE (LUNetworkRemove).
type NetworkRemove struct{}

// NetworkConnect implements OP_NETWORK_CONNECT (LUNetworkConnect).
type NetworkConnect struct{}

// NetworkDisconnect implements OP_NETWORK_DISCONNECT (LUNetworkDisconnect).
type NetworkDisconnect struct{}

// valueNone is Ganeti's VALUE_NONE: "none" unsets an optional parameter.
const valueNone = "none"

// obMACPrefix is Ganeti's NormalizeAndValidateThreeOctetMacPrefix.
// obOptionalParam applies an optional modify parameter to cur: an empty
// value keeps cur, valueNone clears it, and anything else is validated
// and normalised by parse.
func obOptionalParam(p string, cur *string, parse func(string) (string, error)) (*string, error) {
	switch p {
	case "":
		return cur, nil
	case valueNone:
		return nil, nil
	}
	n, err := parse(p)
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func obMACPrefix(p string) (string, error) {
	n := strings.ToLower(p)
	if !cluster.ValidMACPrefix(n) {
		return "", errs.Prereq(errs.CodeInval, "Invalid MAC address prefix '%s'", p)
	}
	return n, nil
}

func obIPv6Network(s string) (string, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is6() {
		return "", errs.Prereq(errs.CodeInval, "Invalid IPv6 network '%s'", s)
	}
	return p.String(), nil
}

func obIPv6Addr(s string) (string, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return "", errs.Prereq(errs.CodeInval, "Invalid IPv6 address '%s'", s)
	}
	return a.String(), nil
}

// Locks implements Executor: with conflicts_check, all nodes (shared), whose
// addresses are reserved in the new network.
func (NetworkAdd) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNetworkAdd)
	if !ok {
		return nil, obUnexpected(op)
	}
	if m.ConflictsCheck != nil && !*m.ConflictsCheck {
		return nil, nil
	}
	var locks []opexec.Lock
	for _, u := range st.UUIDs("node") {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNode, Name: u, Mode: opexec.Shared})
	}
	return locks, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e NetworkAdd) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NetworkAdd) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NetworkAdd) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (NetworkAdd) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNetworkAdd)
	if !ok {
		return nil, obUnexpected(op)
	}
	cfg := x.Config
	name := m.GetNetworkName()
	if err := cluster.CheckObjectName("network", name); err != nil {
		return nil, err
	}
	if m.Network == nil {
		return nil, errs.Prereq(errs.CodeInval, "Network must be given")
	}
	if nw := obNetwork(cfg, name); nw != nil {
		return nil, errs.Prereq(errs.CodeExists, "Desired network name '%s' already exists as a network (UUID: %s)", name, nw.UUID)
	}
	for _, tag := range m.GetTags() {
		if err := ValidateTag(tag); err != nil {
			return nil, err
		}
	}
	nw := &cluster.Network{Name: name, Network: m.GetNetwork()}
	if m.MacPrefix != nil {
		p, err := obMACPrefix(*m.MacPrefix)
		if err != nil {
			return nil, err
		}
		nw.MACPrefix = &p
	}
	if m.Network6 != nil {
		s, err := obIPv6Network(*m.Network6)
		if err != nil {
			return nil, err
		}
		nw.Network6 = &s
	}
	if m.Gateway6 != nil {
		s, err := obIPv6Addr(*m.Gateway6)
		if err != nil {
			return nil, err
		}
		nw.Gateway6 = &s
	}
	if x.DryRun {
		return nil, nil
	}

	// Exec: the address pool.
	poolErr := func(err error) error {
		return errs.Exec("Cannot create IP address pool for network '%s': %s", name, err)
	}
	pool, err := cluster.NewNetworkPool(m.GetNetwork())
	if err != nil {
		return nil, poolErr(err)
	}
	total := pool.Size()
	for _, other := range cfg.Networks {
		if p, err := cluster.PoolOf(other); err == nil {
			total += p.Size()
		}
	}
	if total > cluster.MaxPoolAddrs {
		return nil, errs.Prereq(errs.CodeNoRes, "The networks of the cluster would hold more than %d addresses together", cluster.MaxPoolAddrs)
	}
	nw.Network = pool.Network()
	if m.Gateway != nil {
		gw, err := netip.ParseAddr(*m.Gateway)
		if err != nil || !gw.Is4() {
			//lint:ignore ST1005 Ganeti's wire text
			return nil, poolErr(fmt.Errorf("Invalid IP address '%s'", *m.Gateway))
		}
		if err := pool.Reserve(gw.String(), true); err != nil {
			return nil, poolErr(err)
		}
		s := gw.String()
		nw.Gateway = &s
	}
	if m.ConflictsCheck == nil || *m.ConflictsCheck {
		nodes := make([]*cluster.Node, 0, len(cfg.Nodes))
		for _, n := range cfg.Nodes {
			nodes = append(nodes, n)
		}
		slices.SortFunc(nodes, func(a, b *cluster.Node) int { return strings.Compare(a.Name, b.Name) })
		for _, n := range nodes {
			for _, ip := range []string{n.PrimaryIP, n.SecondaryIP} {
				if ip == "" || !pool.Contains(ip) {
					continue
				}
				if err := pool.Reserve(ip, true); err != nil {
					x.LogWarning("Cannot reserve IP address '%s' of node '%s': %s", ip, n.Name, err)
					continue
				}
				x.LogInfo("Reserved IP address of node '%s' (%s)", n.Name, ip)
			}
		}
	}
	for _, ip := range m.GetAddReservedIps() {
		if err := pool.Reserve(ip, true); err != nil {
			return nil, errs.Exec("Cannot reserve IP address '%s': %s", ip, err)
		}
	}
	// LUNetworkAdd.Exec: nobj.AddTag for each tag (TagError "Too many
	// tags" beyond MAX_TAGS_PER_OBJ).
	tags, err := cluster.AddTags(nil, m.GetTags())
	if err != nil {
		return nil, err
	}
	now := x.Timestamp()
	nw.UUID, nw.CTime, nw.MTime, nw.SerialNo, nw.Tags = x.NewUUID(), now, now, 1, tags
	nw.Reservations, nw.ExtReservations = pool.Maps()
	cfg.Networks[nw.UUID] = nw
	obBumpCluster(x)
	return nil, nil
}

// Locks implements Executor.
func (NetworkSetParams) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNetworkSetParams)
	if !ok {
		return nil, obUnexpected(op)
	}
	uuid, err := obLookupNetwork(st, m.GetNetworkName())
	if err != nil {
		return nil, err
	}
	return []opexec.Lock{{Level: opexec.LevelNetwork, Name: uuid, Mode: opexec.Exclusive}}, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e NetworkSetParams) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NetworkSetParams) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NetworkSetParams) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (NetworkSetParams) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNetworkSetParams)
	if !ok {
		return nil, obUnexpected(op)
	}
	if m.GetGateway() != "" && (len(m.GetAddReservedIps()) > 0 || len(m.GetRemoveReservedIps()) > 0) {
		return nil, errs.Prereq(errs.CodeInval, "Cannot modify gateway and reservations at the same time")
	}
	old := obNetwork(x.Config, m.GetNetworkName())
	if old == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", m.GetNetworkName())
	}
	pool, err := cluster.PoolOf(old)
	if err != nil {
		return nil, err
	}
	gateway := old.Gateway
	if g := m.GetGateway(); g != "" {
		if g == valueNone {
			gateway = nil
		} else {
			a, err := netip.ParseAddr(g)
			if err != nil || !a.Is4() {
				return nil, errs.Prereq(errs.CodeInval, "Invalid IP address '%s'", g)
			}
			used, err := pool.IsReserved(a.String(), false)
			if err != nil {
				return nil, obPoolError(err)
			}
			if used {
				return nil, errs.Prereq(errs.CodeState, "Gateway IP address '%s' is already reserved.", g)
			}
			s := a.String()
			gateway = &s
		}
	}
	macPrefix, network6, gateway6 := old.MACPrefix, old.Network6, old.Gateway6
	if macPrefix, err = obOptionalParam(m.GetMacPrefix(), macPrefix, obMACPrefix); err != nil {
		return nil, err
	}
	if network6, err = obOptionalParam(m.GetNetwork6(), network6, obIPv6Network); err != nil {
		return nil, err
	}
	if gateway6, err = obOptionalParam(m.GetGateway6(), gateway6, obIPv6Addr); err != nil {
		return nil, err
	}
	if x.DryRun {
		return nil, nil
	}
	if m.GetGateway() != "" {
		if obStrEq(gateway, old.Gateway) {
			x.LogWarning("Gateway is already %s", obStrOr(gateway, "None"))
		} else {
			if gateway != nil {
				if err := pool.Reserve(*gateway, true); err != nil {
					return nil, obPoolError(err)
				}
			}
			if old.Gateway != nil {
				if err := pool.Release(*old.Gateway, true); err != nil {
					return nil, obPoolError(err)
				}
			}
		}
	}
	for _, ip := range m.GetAddReservedIps() {
		if err := pool.Reserve(ip, true); err != nil {
			x.LogWarning("Cannot reserve IP address %s: %s", ip, err)
		}
	}
	for _, ip := range m.GetRemoveReservedIps() {
		if old.Gateway != nil && ip == *old.Gateway {
			x.LogWarning("Cannot unreserve Gateway's IP")
			continue
		}
		if err := pool.Release(ip, true); err != nil {
			x.LogWarning("Cannot release IP address %s: %s", ip, err)
		}
	}
	e := x.Config.EditNetwork(old.UUID)
	e.Gateway, e.MACPrefix, e.Network6, e.Gateway6 = gateway, macPrefix, network6, gateway6
	e.Reservations, e.ExtReservations = pool.Maps()
	e.SerialNo++
	e.MTime = x.Timestamp()
	return nil, nil
}

// obPoolError is an uncaught Ganeti AddressPoolError.
func obPoolError(err error) error {
	return &errs.Error{Class: "AddressPoolError", Msg: err.Error()}
}

func obStrEq(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func obStrOr(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

// Locks implements Executor: the network exclusively, all groups shared.
func (NetworkRemove) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNetworkRemove)
	if !ok {
		return nil, obUnexpected(op)
	}
	uuid, err := obLookupNetwork(st, m.GetNetworkName())
	if err != nil {
		return nil, err
	}
	locks := []opexec.Lock{{Level: opexec.LevelNetwork, Name: uuid, Mode: opexec.Exclusive}}
	for _, g := range st.UUIDs("group") {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNodeGroup, Name: g, Mode: opexec.Shared})
	}
	return locks, nil
}

// Exec implements Executor: opexec.CheckApply.
func (e NetworkRemove) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NetworkRemove) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NetworkRemove) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (NetworkRemove) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNetworkRemove)
	if !ok {
		return nil, obUnexpected(op)
	}
	nw := obNetwork(x.Config, m.GetNetworkName())
	if nw == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", m.GetNetworkName())
	}
	var groups []string
	for _, g := range x.Config.Groups {
		if _, ok := g.Networks[nw.UUID]; ok {
			groups = append(groups, g.Name)
		}
	}
	if len(groups) > 0 {
		cluster.NiceSort(groups)
		x.LogWarning("Network '%s' is connected to the following node groups: %s", m.GetNetworkName(), obCommaJoin(groups))
		return nil, errs.Prereq(errs.CodeState, "Network still connected")
	}
	// Not in Ganeti (whose configuration then holds NICs in an unknown
	// network): NICs must not be left in a removed network.
	var users []string
	for _, inst := range x.Config.Instances {
		for _, nic := range inst.NICs {
			if nic.Network != nil && *nic.Network == nw.UUID {
				users = append(users, inst.Name)
				break
			}
		}
	}
	if len(users) > 0 {
		cluster.NiceSort(users)
		return nil, errs.Prereq(errs.CodeState, "Network '%s' is still used by instances: %s", m.GetNetworkName(), obCommaJoin(users))
	}
	if x.DryRun {
		return nil, nil
	}
	delete(x.Config.Networks, nw.UUID)
	obBumpCluster(x)
	return nil, nil
}

// obConnectLocks are the locks of connect and disconnect: the group
// exclusively, its instances shared and, with conflicts check, the network
// shared.
func obConnectLocks(st *cluster.State, group, network string, withNetwork bool) ([]opexec.Lock, error) {
	netUUID, err := obLookupNetwork(st, network)
	if err != nil {
		return nil, err
	}
	groupUUID, err := obLookupGroup(st, group)
	if err != nil {
		return nil, err
	}
	locks := []opexec.Lock{{Level: opexec.LevelNodeGroup, Name: groupUUID, Mode: opexec.Exclusive}}
	if withNetwork {
		locks = append(locks, opexec.Lock{Level: opexec.LevelNetwork, Name: netUUID, Mode: opexec.Shared})
	}
	for _, name := range st.GroupInstances(groupUUID) {
		locks = append(locks, opexec.Lock{Level: opexec.LevelInstance, Name: name, Mode: opexec.Shared})
	}
	return locks, nil
}

// obConflictCheck is Ganeti's _NetworkConflictCheck over the instances of
// group: check tells whether a NIC conflicts.
func obConflictCheck(x *opexec.ExecContext, networkName string, group *cluster.Group, action string, check func(*cluster.NIC) bool) error {
	type conflict struct {
		name    string
		details []string
	}
	var conflicts []conflict
	for _, inst := range x.Config.Instances {
		in := x.Config.Nodes[inst.PrimaryNode].Group == group.UUID
		for _, sn := range inst.SecondaryNodes {
			in = in || x.Config.Nodes[sn].Group == group.UUID
		}
		if !in {
			continue
		}
		var details []string
		for i := range inst.NICs {
			if check(&inst.NICs[i]) {
				details = append(details, fmt.Sprintf("nic%d/%s", i, obStrOr(inst.NICs[i].IP, "None")))
			}
		}
		if len(details) > 0 {
			conflicts = append(conflicts, conflict{inst.Name, details})
		}
	}
	if len(conflicts) == 0 {
		return nil
	}
	slices.SortFunc(conflicts, func(a, b conflict) int { return strings.Compare(a.name, b.name) })
	parts := make([]string, len(conflicts))
	for i, c := range conflicts {
		parts[i] = c.name + ": " + obCommaJoin(c.details)
	}
	x.LogWarning("IP addresses from network '%s', which is about to %s node group '%s', are in use: %s", networkName, action, group.Name, obCommaJoin(parts))
	return errs.Prereq(errs.CodeState, "Conflicting IP addresses found;  remove/modify the corresponding network interfaces")
}

// Locks implements Executor.
func (NetworkConnect) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNetworkConnect)
	if !ok {
		return nil, obUnexpected(op)
	}
	return obConnectLocks(st, m.GetGroupName(), m.GetNetworkName(), m.ConflictsCheck == nil || *m.ConflictsCheck)
}

// Exec implements Executor: opexec.CheckApply.
func (e NetworkConnect) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NetworkConnect) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NetworkConnect) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (NetworkConnect) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNetworkConnect)
	if !ok {
		return nil, obUnexpected(op)
	}
	nw := obNetwork(x.Config, m.GetNetworkName())
	if nw == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", m.GetNetworkName())
	}
	g := obGroup(x.Config, m.GetGroupName())
	if g == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", m.GetGroupName())
	}
	mode, _ := legacyenum.Of(m.NetworkMode)
	if !slices.Contains(cluster.NICModes(), mode) {
		return nil, &errs.Error{Class: "ConfigurationError", Msg: fmt.Sprintf("Invalid NIC mode '%s'", mode)}
	}
	if mode == "bridged" && m.GetNetworkLink() == "" {
		return nil, &errs.Error{Class: "ConfigurationError", Msg: "Missing bridged NIC link"}
	}
	netparams := cluster.Params{"mode": mode, "link": m.GetNetworkLink(), "vlan": m.GetNetworkVlan()}
	if _, connected := g.Networks[nw.UUID]; connected {
		x.LogWarning("Network '%s' is already mapped to group '%s'", m.GetNetworkName(), g.Name)
		return nil, nil
	}
	if m.ConflictsCheck == nil || *m.ConflictsCheck {
		pool, err := cluster.PoolOf(nw)
		if err != nil {
			return nil, err
		}
		err = obConflictCheck(x, m.GetNetworkName(), g, "connect to", func(nic *cluster.NIC) bool {
			return nic.IP != nil && pool.Contains(*nic.IP)
		})
		if err != nil {
			return nil, err
		}
	}
	if x.DryRun {
		return nil, nil
	}
	e := x.Config.EditGroup(g.UUID)
	if e.Networks == nil {
		e.Networks = map[string]cluster.Params{}
	}
	e.Networks[nw.UUID] = netparams
	e.SerialNo++
	e.MTime = x.Timestamp()
	return nil, nil
}

// Locks implements Executor.
func (NetworkDisconnect) Locks(op proto.Message, st *cluster.State) ([]opexec.Lock, error) {
	m, ok := op.(*rapiv2.OpNetworkDisconnect)
	if !ok {
		return nil, obUnexpected(op)
	}
	return obConnectLocks(st, m.GetGroupName(), m.GetNetworkName(), false)
}

// Exec implements Executor: opexec.CheckApply.
func (e NetworkDisconnect) Exec(x *opexec.ExecContext, op proto.Message) (any, error) {
	return opexec.CheckApply(e, x, op)
}

// Check implements opexec.Phased: the checks (and allocator) of body on
// the snapshot (checkOnSnapshot).
func (e NetworkDisconnect) Check(c *opexec.CheckContext, op proto.Message) (any, error) {
	return checkOnSnapshot(c, op, e.body)
}

// Apply implements opexec.Phased: body with the plan (applyPlan).
func (e NetworkDisconnect) Apply(x *opexec.ExecContext, op proto.Message, plan any) (any, error) {
	return applyPlan(x, op, plan, e.body)
}

// body is the logical unit after its locks: CheckPrereq and Exec.
func (NetworkDisconnect) body(x *opexec.ExecContext, op proto.Message) (any, error) {
	m, ok := op.(*rapiv2.OpNetworkDisconnect)
	if !ok {
		return nil, obUnexpected(op)
	}
	nw := obNetwork(x.Config, m.GetNetworkName())
	if nw == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Network '%s' not found", m.GetNetworkName())
	}
	g := obGroup(x.Config, m.GetGroupName())
	if g == nil {
		return nil, errs.Prereq(errs.CodeNoEnt, "Node group '%s' not found", m.GetGroupName())
	}
	if _, connected := g.Networks[nw.UUID]; !connected {
		x.LogWarning("Network '%s' is not mapped to group '%s'", m.GetNetworkName(), g.Name)
		return nil, nil
	}
	err := obConflictCheck(x, m.GetNetworkName(), g, "disconnect from", func(nic *cluster.NIC) bool {
		return nic.Network != nil && *nic.Network == nw.UUID
	})
	if err != nil {
		return nil, err
	}
	if x.DryRun {
		return nil, nil
	}
	e := x.Config.EditGroup(g.UUID)
	delete(e.Networks, nw.UUID)
	e.SerialNo++
	e.MTime = x.Timestamp()
	return nil, nil
}
