package cluster

import "slices"

// ClusterExtras is the part of the cluster configuration kept for the
// storage and export opcodes: the storage units marked non-allocatable
// (OP_NODE_MODIFY_STORAGE), the cluster domain secret and the X509 key
// names created by OP_BACKUP_PREPARE. It is embedded in Cluster; its
// slices are shared between copies of the configuration, so they are
// replaced, never modified in place.
type ClusterExtras struct {
	// UnallocatableStorage holds "<node uuid>/<storage type>/<unit name>"
	// of the storage units whose allocatable flag is off.
	UnallocatableStorage []string `json:"unallocatable_storage,omitempty"`
	// DomainSecret is the cluster domain secret (Ganeti's
	// cluster-domain-secret file); empty when none is configured.
	DomainSecret string `json:"cluster_domain_secret,omitempty"`
	// X509KeyNames are the names of the X509 keys created for remote
	// exports.
	X509KeyNames []string `json:"x509_key_names,omitempty"`
}

// PVName is the name of the simulated LVM physical volume of each node
// (the one physical volume of the volume group).
const PVName = "/dev/sdb1"

func storageKey(node, storageType, name string) string {
	return node + "/" + storageType + "/" + name
}

// StorageAllocatable reports whether a storage unit is allocatable.
func (c *Cluster) StorageAllocatable(node, storageType, name string) bool {
	return !slices.Contains(c.UnallocatableStorage, storageKey(node, storageType, name))
}

// SetStorageAllocatable sets a storage unit's allocatable flag; c must be
// the copy returned by Config.EditCluster.
func (c *Cluster) SetStorageAllocatable(node, storageType, name string, allocatable bool) {
	k := storageKey(node, storageType, name)
	out := make([]string, 0, len(c.UnallocatableStorage)+1)
	for _, s := range c.UnallocatableStorage {
		if s != k {
			out = append(out, s)
		}
	}
	if !allocatable {
		out = append(out, k)
		slices.Sort(out)
	}
	if len(out) == 0 {
		out = nil
	}
	c.UnallocatableStorage = out
}

// AddX509KeyName records an X509 key name; c must be the copy returned by
// Config.EditCluster.
func (c *Cluster) AddX509KeyName(name string) {
	out := append(slices.Clone(c.X509KeyNames), name)
	c.X509KeyNames = out
}

// HasX509KeyName reports whether the X509 key name was recorded.
func (c *Cluster) HasX509KeyName(name string) bool { return slices.Contains(c.X509KeyNames, name) }
