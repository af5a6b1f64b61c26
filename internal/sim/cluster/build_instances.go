package cluster

import (
	"fmt"
	"net/netip"
	"strings"
)

// Seeding: networks and instances, their address reservations and the
// memory and storage they take on their nodes.

func (b *builder) buildNetworks() error {
	total := 0
	for i, fnw := range b.f.Networks {
		if err := checkObjectName(fmt.Sprintf("networks[%d]", i), fnw.Name); err != nil {
			return err
		}
		what := "network " + fnw.Name
		if _, dup := b.networks[fnw.Name]; dup {
			return fmt.Errorf("%s: declared twice", what)
		}
		m, err := b.meta(what, fnw.FileMeta)
		if err != nil {
			return err
		}
		prefix, err := netip.ParsePrefix(fnw.Network)
		if err != nil || !prefix.Addr().Is4() {
			return fmt.Errorf("%s: network must be an IPv4 subnet like 10.0.0.0/24, not %q", what, fnw.Network)
		}
		if prefix.Bits() < minNetPrefix || prefix.Bits() > maxNetPrefix {
			return fmt.Errorf("%s: the prefix length must be between /%d and /%d", what, minNetPrefix, maxNetPrefix)
		}
		if prefix.Masked() != prefix {
			return fmt.Errorf("%s: %s has host bits set (network is %s)", what, fnw.Network, prefix.Masked())
		}
		if total += 1 << (32 - prefix.Bits()); total > maxPoolAddrs {
			return fmt.Errorf("%s: the networks hold more than %d addresses together", what, maxPoolAddrs)
		}
		pool := newAddrPool(prefix)
		nw := &Network{
			Name: fnw.Name, UUID: m.uuid, CTime: m.ctime, MTime: m.mtime, SerialNo: m.serial, Tags: m.tags,
			Network: prefix.String(),
		}
		pool.reserveExt(pool.base)
		pool.reserveExt(pool.broadcast())
		if fnw.Gateway != nil {
			gw, err := netip.ParseAddr(*fnw.Gateway)
			if err != nil || !prefix.Contains(gw) {
				return fmt.Errorf("%s: gateway %q is not an address of %s", what, *fnw.Gateway, prefix)
			}
			s := gw.String()
			nw.Gateway = &s
			pool.reserveExt(gw)
		}
		if fnw.Network6 != nil {
			p6, err := netip.ParsePrefix(*fnw.Network6)
			if err != nil || !p6.Addr().Is6() {
				return fmt.Errorf("%s: invalid network6 %q", what, *fnw.Network6)
			}
			s := p6.String()
			nw.Network6 = &s
		}
		if fnw.Gateway6 != nil {
			gw6, err := netip.ParseAddr(*fnw.Gateway6)
			if err != nil || !gw6.Is6() {
				return fmt.Errorf("%s: invalid gateway6 %q", what, *fnw.Gateway6)
			}
			s := gw6.String()
			nw.Gateway6 = &s
		}
		if fnw.MACPrefix != nil {
			p := strings.ToLower(*fnw.MACPrefix)
			if !pfxRe.MatchString(p) {
				return fmt.Errorf("%s: invalid mac_prefix %q", what, *fnw.MACPrefix)
			}
			nw.MACPrefix = &p
		}
		for _, r := range fnw.ReservedIPs {
			ip, err := netip.ParseAddr(r)
			if err != nil || !prefix.Contains(ip) {
				return fmt.Errorf("%s: reserved address %q is not an address of %s", what, r, prefix)
			}
			pool.reserveExt(ip)
		}
		for _, conn := range fnw.Connections {
			g, ok := b.groups[conn.Group]
			if !ok {
				return fmt.Errorf("%s: connection to unknown group %q", what, conn.Group)
			}
			if _, dup := g.Networks[nw.UUID]; dup {
				return fmt.Errorf("%s: connected to group %s twice", what, g.Name)
			}
			mode := conn.Mode
			if mode == "" {
				mode = defaultNICMode
			}
			if !contains(nicModes, mode) {
				return fmt.Errorf("%s: connection to %s: invalid mode %q", what, g.Name, conn.Mode)
			}
			if conn.Link == "" {
				return fmt.Errorf("%s: connection to %s: missing link", what, g.Name)
			}
			g.Networks[nw.UUID] = Params{"mode": mode, "link": conn.Link, "vlan": conn.VLAN}
		}
		b.networks[nw.Name] = nw
		b.pools[nw.UUID] = pool
		b.cfg.Networks[nw.UUID] = nw
	}
	return nil
}

// Instances.

func (b *builder) buildInstances() error {
	c := b.cfg.Cluster
	names := map[string]bool{}
	for i, fi := range b.f.Instances {
		if err := checkHostName(fmt.Sprintf("instances[%d]", i), fi.Name); err != nil {
			return err
		}
		what := "instance " + fi.Name
		if names[fi.Name] {
			return fmt.Errorf("%s: declared twice", what)
		}
		names[fi.Name] = true
		m, err := b.meta(what, fi.FileMeta)
		if err != nil {
			return err
		}
		inst := &Instance{
			Name: fi.Name, UUID: m.uuid, CTime: m.ctime, MTime: m.mtime, SerialNo: m.serial, Tags: m.tags,
			OS: fi.OS, Hypervisor: fi.Hypervisor, AdminState: fi.AdminState,
			AdminStateSource: fi.AdminStateSource, SecondaryNodes: []string{}, NetworkPort: clonePtr(fi.NetworkPort),
		}
		if err := b.checkInstanceOS(what, inst.OS); err != nil {
			return err
		}
		if inst.Hypervisor == "" {
			inst.Hypervisor = c.EnabledHypervisors[0]
		}
		if !contains(c.EnabledHypervisors, inst.Hypervisor) {
			return fmt.Errorf("%s: hypervisor %q is not enabled", what, inst.Hypervisor)
		}
		if inst.AdminState == "" {
			inst.AdminState = AdminUp
		}
		if !contains(adminStates, inst.AdminState) {
			return fmt.Errorf("%s: admin_state must be up, down or offline", what)
		}
		if inst.AdminStateSource == "" {
			inst.AdminStateSource = "admin"
		}
		if inst.AdminStateSource != "admin" && inst.AdminStateSource != "user" {
			return fmt.Errorf("%s: admin_state_source must be admin or user", what)
		}
		inst.DisksActive = orDefault(fi.DisksActive, inst.AdminState == AdminUp)
		if p := inst.NetworkPort; p != nil && (*p < 0 || *p > 65535) {
			return fmt.Errorf("%s: network_port must be between 0 and 65535", what)
		}

		pnode, ok := b.nodes[fi.PNode]
		if fi.PNode == "" || !ok {
			return fmt.Errorf("%s: pnode %q is not a declared node", what, fi.PNode)
		}
		if !pnode.VMCapable {
			return fmt.Errorf("%s: node %s is not vm_capable", what, pnode.Name)
		}
		inst.PrimaryNode = pnode.UUID

		if err := b.instanceDisks(what, inst, fi); err != nil {
			return err
		}
		if fi.SNode != "" {
			if inst.DiskTemplate != "drbd" {
				return fmt.Errorf("%s: snode is only valid with the drbd disk template", what)
			}
			snode, ok := b.nodes[fi.SNode]
			if !ok {
				return fmt.Errorf("%s: snode %q is not a declared node", what, fi.SNode)
			}
			if snode == pnode {
				return fmt.Errorf("%s: snode must differ from pnode", what)
			}
			if !snode.VMCapable {
				return fmt.Errorf("%s: node %s is not vm_capable", what, snode.Name)
			}
			inst.SecondaryNodes = []string{snode.UUID}
		} else if inst.DiskTemplate == "drbd" {
			return fmt.Errorf("%s: the drbd disk template needs an snode", what)
		}

		if inst.BEParams, err = checkParams(fi.BEParams, defaultBEParams); err != nil {
			return fmt.Errorf("%s: beparams: %w", what, err)
		}
		be := fillParams(c.BEParams, inst.BEParams)
		if err := checkBEParams(what+": beparams", be); err != nil {
			return err
		}
		hvDefs := Params{}
		for k, v := range defaultHVParams[inst.Hypervisor] {
			if !hvGlobalParams[k] {
				hvDefs[k] = v
			}
		}
		if inst.HVParams, err = checkParams(fi.HVParams, hvDefs); err != nil {
			return fmt.Errorf("%s: hvparams: %w", what, err)
		}
		if inst.OSParams, err = checkOSParams(fi.OSParams); err != nil {
			return fmt.Errorf("%s: osparams: %w", what, err)
		}
		if err := b.instanceNICs(what, inst, fi, pnode); err != nil {
			return err
		}
		if inst.AdminState == AdminUp && !pnode.Offline {
			inst.Running = true
			inst.OperRAM, _ = be["maxmem"].(int64)
			inst.OperVCPUs, _ = be["vcpus"].(int64)
		}
		b.cfg.Instances[inst.UUID] = inst
	}
	return nil
}

func (b *builder) checkInstanceOS(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s: missing os", what)
	}
	base, variant, hasVariant := strings.Cut(name, "+")
	os, ok := b.cfg.OSes[base]
	if !ok {
		return fmt.Errorf("%s: os %q is not declared", what, base)
	}
	if hasVariant && !contains(os.Variants, variant) {
		return fmt.Errorf("%s: os %s has no variant %q", what, base, variant)
	}
	return nil
}

func (b *builder) instanceDisks(what string, inst *Instance, fi FileInstance) error {
	c := b.cfg.Cluster
	inst.DiskTemplate = fi.DiskTemplate
	if inst.DiskTemplate == "" {
		inst.DiskTemplate = "diskless"
		if len(fi.Disks) > 0 {
			for _, dt := range c.EnabledDiskTemplates {
				if dt != "diskless" {
					inst.DiskTemplate = dt
					break
				}
			}
		}
	}
	if !contains(c.EnabledDiskTemplates, inst.DiskTemplate) {
		return fmt.Errorf("%s: disk template %q is not enabled", what, inst.DiskTemplate)
	}
	if inst.DiskTemplate == "diskless" && len(fi.Disks) > 0 {
		return fmt.Errorf("%s: a diskless instance has no disks", what)
	}
	if inst.DiskTemplate != "diskless" && len(fi.Disks) == 0 {
		return fmt.Errorf("%s: the %s disk template needs at least one disk", what, inst.DiskTemplate)
	}
	if len(fi.Disks) > maxDisks {
		return fmt.Errorf("%s: more than %d disks", what, maxDisks)
	}
	inst.Disks = make([]Disk, 0, len(fi.Disks))
	names := map[string]bool{}
	for j, fd := range fi.Disks {
		dw := fmt.Sprintf("%s: disk %d", what, j)
		if fd.Size < 1 || fd.Size > maxSizeMiB {
			return fmt.Errorf("%s: size must be between 1 and %d MiB", dw, int64(maxSizeMiB))
		}
		uuid, err := b.uuid(dw, fd.UUID)
		if err != nil {
			return err
		}
		d := Disk{UUID: uuid, Size: fd.Size, Name: clonePtr(fd.Name), Spindles: clonePtr(fd.Spindles), Mode: fd.Mode}
		if d.Mode == "" {
			d.Mode = "rw"
		}
		if !contains(diskModes, d.Mode) {
			return fmt.Errorf("%s: mode must be rw or ro", dw)
		}
		if d.Name != nil {
			if err := checkName(dw, *d.Name); err != nil {
				return err
			}
			if names[*d.Name] {
				return fmt.Errorf("%s: duplicate disk name %q", dw, *d.Name)
			}
			names[*d.Name] = true
		}
		if d.Spindles != nil && (*d.Spindles < 0 || *d.Spindles > maxCPUs) {
			return fmt.Errorf("%s: invalid spindles", dw)
		}
		inst.Disks = append(inst.Disks, d)
	}
	return nil
}

func (b *builder) instanceNICs(what string, inst *Instance, fi FileInstance, pnode *Node) error {
	var decls []FileNIC
	if fi.NICs == nil {
		decls = []FileNIC{{}} // Ganeti's default: one NIC with the cluster's parameters
	} else {
		decls = *fi.NICs
	}
	if len(decls) > maxNICs {
		return fmt.Errorf("%s: more than %d NICs", what, maxNICs)
	}
	inst.NICs = make([]NIC, 0, len(decls))
	names := map[string]bool{}
	for j, fnic := range decls {
		nw := fmt.Sprintf("%s: nic %d", what, j)
		uuid, err := b.uuid(nw, fnic.UUID)
		if err != nil {
			return err
		}
		nic := NIC{UUID: uuid, Name: clonePtr(fnic.Name), NICParams: Params{}}
		if nic.Name != nil {
			if err := checkName(nw, *nic.Name); err != nil {
				return err
			}
			if names[*nic.Name] {
				return fmt.Errorf("%s: duplicate NIC name %q", nw, *nic.Name)
			}
			names[*nic.Name] = true
		}
		macPrefix := b.cfg.Cluster.MACPrefix
		var network *Network
		if fnic.Network != "" {
			network = b.networks[fnic.Network]
			if network == nil {
				return fmt.Errorf("%s: unknown network %q", nw, fnic.Network)
			}
			conn, ok := b.cfg.Groups[pnode.Group].Networks[network.UUID]
			if !ok {
				return fmt.Errorf("%s: network %s is not connected to node group %s", nw, network.Name, b.cfg.Groups[pnode.Group].Name)
			}
			for _, k := range []string{"mode", "link", "vlan"} {
				nic.NICParams[k] = conn[k]
			}
			u := network.UUID
			nic.Network = &u
			if network.MACPrefix != nil {
				macPrefix = *network.MACPrefix
			}
		}
		if fnic.Mode != "" {
			if !contains(nicModes, fnic.Mode) {
				return fmt.Errorf("%s: invalid mode %q", nw, fnic.Mode)
			}
			nic.NICParams["mode"] = fnic.Mode
		}
		if fnic.Link != "" {
			nic.NICParams["link"] = fnic.Link
		}
		if fnic.VLAN != nil {
			nic.NICParams["vlan"] = *fnic.VLAN
		}
		if fnic.MAC == "" {
			mac, err := b.newMAC(macPrefix)
			if err != nil {
				return fmt.Errorf("%s: %w", nw, err)
			}
			nic.MAC = mac
		} else {
			nic.MAC = strings.ToLower(fnic.MAC)
			if !macRe.MatchString(nic.MAC) {
				return fmt.Errorf("%s: invalid mac %q", nw, fnic.MAC)
			}
			if b.macs[nic.MAC] {
				return fmt.Errorf("%s: mac %s is already used", nw, nic.MAC)
			}
			b.macs[nic.MAC] = true
		}
		if fnic.IP != nil {
			ip, err := b.nicIP(nw, *fnic.IP, network)
			if err != nil {
				return err
			}
			nic.IP = &ip
		}
		inst.NICs = append(inst.NICs, nic)
	}
	return nil
}

func (b *builder) newMAC(prefix string) (string, error) {
	for attempt := 0; attempt < 64; attempt++ {
		var r [3]byte
		b.ids.read(r[:])
		mac := fmt.Sprintf("%s:%02x:%02x:%02x", prefix, r[0], r[1], r[2])
		if !b.macs[mac] {
			b.macs[mac] = true
			return mac, nil
		}
	}
	return "", fmt.Errorf("cannot generate a unique MAC address with prefix %s", prefix)
}

// nicIP validates a NIC's IP; within a network it is reserved in the pool
// ("pool" takes the first free address).
func (b *builder) nicIP(what, given string, network *Network) (string, error) {
	if network == nil {
		if given == "pool" {
			return "", fmt.Errorf("%s: ip \"pool\" needs a network", what)
		}
		ip, err := netip.ParseAddr(given)
		if err != nil || !ip.Is4() {
			return "", fmt.Errorf("%s: invalid IPv4 address %q", what, given)
		}
		return ip.String(), nil
	}
	pool := b.pools[network.UUID]
	if given == "pool" {
		ip, ok := pool.firstFree()
		if !ok {
			return "", fmt.Errorf("%s: network %s has no free address", what, network.Name)
		}
		pool.reserve(ip)
		return ip.String(), nil
	}
	ip, err := netip.ParseAddr(given)
	if err != nil || !pool.contains(ip) {
		return "", fmt.Errorf("%s: %q is not an address of network %s (%s)", what, given, network.Name, network.Network)
	}
	if pool.reserved(ip) {
		return "", fmt.Errorf("%s: address %s of network %s is already reserved", what, ip, network.Name)
	}
	pool.reserve(ip)
	return ip.String(), nil
}

// buildCapacities checks memory and storage of every node and records what
// the file's mfree/dfree leave to "other" usage.
func (b *builder) buildCapacities() error {
	usage := nodeUsage(b.cfg)
	for _, fn := range b.f.Nodes {
		n := b.nodes[fn.Name]
		u := usage[n.UUID]
		what := "node " + n.Name
		avail := n.MemTotal - n.MemNode
		if u.mem > avail {
			return fmt.Errorf("%s: running instances need %d MiB of memory, only %d MiB are available", what, u.mem, avail)
		}
		if fn.MFree != nil {
			if *fn.MFree < 0 || *fn.MFree > avail-u.mem {
				return fmt.Errorf("%s: mfree must be between 0 and %d MiB (mtotal - mnode - running instances)", what, avail-u.mem)
			}
			n.MemOther = avail - u.mem - *fn.MFree
		}
		if u.disk > n.DiskTotal {
			return fmt.Errorf("%s: instance disks need %d MiB of storage, dtotal is %d MiB", what, u.disk, n.DiskTotal)
		}
		if fn.DFree != nil {
			if *fn.DFree < 0 || *fn.DFree > n.DiskTotal-u.disk {
				return fmt.Errorf("%s: dfree must be between 0 and %d MiB (dtotal - instance disks)", what, n.DiskTotal-u.disk)
			}
			n.DiskOther = n.DiskTotal - u.disk - *fn.DFree
		}
	}
	return nil
}
