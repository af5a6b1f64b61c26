package cluster

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// Network query fields and Ganeti's IPv4 address pool.

var networkTable = newTable("network", networkGetters(), nil,
	func(s *State) []*Network { return s.networks },
	func(s *State, name string) (*Network, error) { return s.network(name) })

// addrMap is one of a network's reservation maps: 'X' reserved, '.' free.
type addrMap []byte

func (m addrMap) String() string { return string(m) }

// addrPool is a network's address pool: instance reservations and
// external reservations, one entry per address.
type addrPool struct {
	prefix netip.Prefix
	base   netip.Addr
	res    addrMap
	ext    addrMap
}

func newAddrPool(prefix netip.Prefix) *addrPool {
	size := 1 << (32 - prefix.Bits())
	p := &addrPool{prefix: prefix, base: prefix.Masked().Addr(), res: make(addrMap, size), ext: make(addrMap, size)}
	for i := range p.res {
		p.res[i], p.ext[i] = '.', '.'
	}
	return p
}

// poolOf rebuilds the pool of a stored network.
func poolOf(nw *Network) (*addrPool, error) {
	prefix, err := netip.ParsePrefix(nw.Network)
	if err != nil || !prefix.Addr().Is4() || prefix.Bits() < minNetPrefix || prefix.Bits() > maxNetPrefix {
		return nil, fmt.Errorf("cluster: network %s has an invalid subnet %q", nw.Name, nw.Network)
	}
	p := newAddrPool(prefix)
	for _, m := range []struct {
		stored string
		into   addrMap
	}{{nw.Reservations, p.res}, {nw.ExtReservations, p.ext}} {
		if m.stored == "" {
			continue
		}
		if len(m.stored) != len(m.into) || strings.Trim(m.stored, "X.") != "" {
			return nil, fmt.Errorf("cluster: network %s has a corrupt reservation map", nw.Name)
		}
		copy(m.into, m.stored)
	}
	return p, nil
}

func (p *addrPool) index(ip netip.Addr) int {
	a, b := p.base.As4(), ip.As4()
	return int(binary.BigEndian.Uint32(b[:]) - binary.BigEndian.Uint32(a[:]))
}

func (p *addrPool) addr(i int) netip.Addr {
	a := p.base.As4()
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(a[:])+uint32(i))
	return netip.AddrFrom4(b)
}

func (p *addrPool) broadcast() netip.Addr       { return p.addr(len(p.res) - 1) }
func (p *addrPool) contains(ip netip.Addr) bool { return ip.Is4() && p.prefix.Contains(ip) }
func (p *addrPool) reserved(ip netip.Addr) bool {
	i := p.index(ip)
	return p.res[i] == 'X' || p.ext[i] == 'X'
}
func (p *addrPool) reserve(ip netip.Addr)    { p.res[p.index(ip)] = 'X' }
func (p *addrPool) reserveExt(ip netip.Addr) { p.ext[p.index(ip)] = 'X' }

func (p *addrPool) firstFree() (netip.Addr, bool) {
	for i := range p.res {
		if p.res[i] != 'X' && p.ext[i] != 'X' {
			return p.addr(i), true
		}
	}
	return netip.Addr{}, false
}

// mapString is Ganeti's "map" field: 'X' for any reservation.
func (p *addrPool) mapString() string {
	b := make([]byte, len(p.res))
	for i := range b {
		b[i] = '.'
		if p.res[i] == 'X' || p.ext[i] == 'X' {
			b[i] = 'X'
		}
	}
	return string(b)
}

func (p *addrPool) counts() (free, reserved int64) {
	for i := range p.res {
		if p.res[i] == 'X' || p.ext[i] == 'X' {
			reserved++
		} else {
			free++
		}
	}
	return free, reserved
}

// externalReservations lists the externally reserved addresses, ", "
// separated, as Ganeti's external_reservations field.
func (p *addrPool) externalReservations() string {
	var out []string
	for i, c := range p.ext {
		if c == 'X' {
			out = append(out, p.addr(i).String())
		}
	}
	return strings.Join(out, ", ")
}

func networkGetters() map[string]getter[*Network] {
	g := map[string]getter[*Network]{
		"name":       func(_ *queryCtx, n *Network) Cell { return normal(n.Name) },
		"network":    func(_ *queryCtx, n *Network) Cell { return normal(n.Network) },
		"gateway":    func(_ *queryCtx, n *Network) Cell { return optCell(n.Gateway) },
		"network6":   func(_ *queryCtx, n *Network) Cell { return optCell(n.Network6) },
		"gateway6":   func(_ *queryCtx, n *Network) Cell { return optCell(n.Gateway6) },
		"mac_prefix": func(_ *queryCtx, n *Network) Cell { return optCell(n.MACPrefix) },
		"map":        func(c *queryCtx, n *Network) Cell { return normal(c.s.pools[n.UUID].mapString()) },
		"free_count": func(c *queryCtx, n *Network) Cell {
			free, _ := c.s.pools[n.UUID].counts()
			return normal(free)
		},
		"reserved_count": func(c *queryCtx, n *Network) Cell {
			_, reserved := c.s.pools[n.UUID].counts()
			return normal(reserved)
		},
		"external_reservations": func(c *queryCtx, n *Network) Cell {
			return normal(c.s.pools[n.UUID].externalReservations())
		},
		"group_list": func(c *queryCtx, n *Network) Cell {
			return normal(c.value(c.s.netStats[n.UUID].groups))
		},
		"group_cnt": func(c *queryCtx, n *Network) Cell { return normal(int64(len(c.s.netStats[n.UUID].groups))) },
		"inst_list": func(c *queryCtx, n *Network) Cell { return normal(c.strs(c.s.netStats[n.UUID].instances)) },
		"inst_cnt":  func(c *queryCtx, n *Network) Cell { return normal(int64(len(c.s.netStats[n.UUID].instances))) },
	}
	commonGetters(g, func(n *Network) (float64, float64, string, int64, []string) {
		return n.CTime, n.MTime, n.UUID, n.SerialNo, n.Tags
	})
	return g
}
