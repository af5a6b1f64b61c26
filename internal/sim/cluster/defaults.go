package cluster

import (
	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyenum"
)

// Ganeti 3.0.2's published defaults, as Go data. Values come from
// ../shared/spec/constants.json where it has them (names, enumerations,
// parameter types) and otherwise from the captured GET /2/info of a freshly
// initialised real cluster (captures.jsonl record 4); the golden test checks
// that a cluster file which sets none of them reproduces that response.

// Version information reported by /2/info.
const (
	SoftwareVersion = "3.0.2"
	ProtocolVersion = 3000000
	ConfigVersion   = 3000000
	OSAPIVersion    = 20
	ExportVersion   = 0
	VCSVersion      = "(ganeti) version 3.0.2-3"
)

// Ganeti's enumerations, derived from the proto's enums (their legacy
// spellings, in declaration order); TestEnumerationsAreGanetis checks them,
// and the ones written out, against constants.json and the proto.
var (
	// Hypervisors lists every Ganeti hypervisor; only "fake" is simulated.
	Hypervisors = legacyenum.Strings(rapiv2.Hypervisor(0).Descriptor())
	// DiskTemplates lists every Ganeti disk template.
	DiskTemplates = legacyenum.Strings(rapiv2.DiskTemplate(0).Descriptor())
	// StorageTypes lists Ganeti's storage types.
	StorageTypes = legacyenum.Strings(rapiv2.StorageType(0).Descriptor())

	// Ganeti's order (VALID_ALLOC_POLICIES: most preferred first), not
	// the proto's; TestEnumerationsAreGanetis checks it against both.
	allocPolicies = []string{"preferred", "last_resort", "unallocable"}
	nicModes      = legacyenum.Strings(rapiv2.NetworkMode(0).Descriptor())
	sshKeyTypes   = legacyenum.Strings(rapiv2.SshKeyType(0).Descriptor())

	adminStates   = []string{AdminDown, AdminOffline, AdminUp}                 // instance_admin_states
	diskModes     = []string{"ro", "rw"}                                       // disk_access_modes
	compressTools = []string{"gzip", "gzip-fast", "gzip-slow", "lzop", "none"} // import_export_compression
)

// Cluster-level defaults of gnt-cluster init.
const (
	defaultCandidatePoolSize = 10
	defaultMaxRunningJobs    = 20
	defaultMaxTrackedJobs    = 25
	defaultMACPrefix         = "aa:00:00"
	defaultMasterNetdev      = "xen-br0"
	defaultMasterNetmask     = 32
	defaultBridge            = "xen-br0"
	defaultNICMode           = "bridged"
	defaultFileStorageDir    = "/srv/ganeti/file-storage"
	defaultSharedFileDir     = "/srv/ganeti/shared-file-storage"
	defaultGlusterDir        = "/var/run/ganeti/gluster"
	defaultVG                = "xenvg"
	defaultDRBDHelper        = "/bin/true"
	defaultIAllocator        = "hail"
	defaultSSHKeyType        = "rsa"
	defaultSSHKeyBits        = 2048
	defaultPrimaryIPVersion  = 4
	defaultDRBDMetaSize      = 128 // MiB of DRBD metadata per disk
)

// defaultEnabledDiskTemplates is Ganeti's DEFAULT_ENABLED_DISK_TEMPLATES.
var defaultEnabledDiskTemplates = []string{"drbd", "plain"}

var defaultCompressionTools = []string{"gzip", "gzip-fast", "gzip-slow"}

// hvGlobalParams are hypervisor parameters that are cluster-wide only; they
// are left out of an instance's hvparams (Ganeti's HVC_GLOBALS).
var hvGlobalParams = map[string]bool{
	"migration_bandwidth": true,
	"migration_mode":      true,
	"migration_port":      true,
	"xen_cmd":             true,
}

// maybeStringParams may be null besides a string (constants.json types
// "maybe-string"); every other parameter has the type of its default value.
var maybeStringParams = map[string]bool{
	"root_path": true, // hvparams
	"ovs_link":  true, // ndparams
	"ovs_name":  true, // ndparams
}

// nicParamDefaults gives the keys and types of NIC parameters; the values
// used are the cluster's nicparams.
var nicParamDefaults = Params{"mode": "", "link": "", "vlan": ""}

var defaultHVParams = map[string]Params{
	"chroot": {
		"init_script": "/ganeti-chroot",
	},
	"fake": {
		"migration_mode": "live",
	},
	"kvm": {
		"acpi":                           true,
		"boot_order":                     "disk",
		"cdrom2_image_path":              "",
		"cdrom_disk_type":                "",
		"cdrom_image_path":               "",
		"cpu_cores":                      int64(0),
		"cpu_mask":                       "all",
		"cpu_sockets":                    int64(0),
		"cpu_threads":                    int64(0),
		"cpu_type":                       "",
		"disk_aio":                       "threads",
		"disk_cache":                     "default",
		"disk_discard":                   "default",
		"disk_type":                      "paravirtual",
		"floppy_image_path":              "",
		"initrd_path":                    "",
		"kernel_args":                    "ro",
		"kernel_path":                    "/boot/vmlinuz-3-kvmU",
		"keymap":                         "",
		"kvm_extra":                      "",
		"kvm_flag":                       "",
		"kvm_path":                       "/usr/bin/kvm",
		"kvm_pci_reservations":           int64(12),
		"machine_version":                "",
		"mem_path":                       "",
		"migration_bandwidth":            int64(32),
		"migration_caps":                 "",
		"migration_downtime":             int64(30),
		"migration_mode":                 "live",
		"migration_port":                 int64(8102),
		"nic_type":                       "paravirtual",
		"reboot_behavior":                "reboot",
		"root_path":                      "/dev/vda1",
		"scsi_controller_type":           "lsi",
		"security_domain":                "",
		"security_model":                 "none",
		"serial_console":                 true,
		"serial_speed":                   int64(38400),
		"soundhw":                        "",
		"spice_bind":                     "",
		"spice_image_compression":        "",
		"spice_ip_version":               int64(0),
		"spice_jpeg_wan_compression":     "",
		"spice_password_file":            "",
		"spice_playback_compression":     true,
		"spice_streaming_video":          "",
		"spice_tls_ciphers":              "HIGH:-DES:-3DES:-EXPORT:-DH",
		"spice_use_tls":                  false,
		"spice_use_vdagent":              true,
		"spice_zlib_glz_wan_compression": "",
		"usb_devices":                    "",
		"usb_mouse":                      "",
		"use_chroot":                     false,
		"use_guest_agent":                false,
		"use_localtime":                  false,
		"user_shutdown":                  false,
		"vga":                            "",
		"vhost_net":                      false,
		"virtio_net_queues":              int64(1),
		"vnc_bind_address":               "",
		"vnc_password_file":              "",
		"vnc_tls":                        false,
		"vnc_x509_path":                  "",
		"vnc_x509_verify":                false,
		"vnet_hdr":                       true,
	},
	"lxc": {
		"cpu_mask":          "",
		"devices":           "c 1:3 rw,c 1:5 rw,c 1:7 rw,c 1:8 rw,c 1:9 rw,c 1:10 rw,c 5:0 rw,c 5:1 rw,c 5:2 rw,c 136:* rw",
		"drop_capabilities": "mac_override,sys_boot,sys_module,sys_time,sys_admin",
		"extra_cgroups":     "",
		"extra_config":      "",
		"num_ttys":          int64(6),
		"startup_timeout":   int64(30),
	},
	"xen-hvm": {
		"acpi":              true,
		"blockdev_prefix":   "hd",
		"boot_order":        "cd",
		"cdrom_image_path":  "",
		"cpu_cap":           int64(0),
		"cpu_mask":          "all",
		"cpu_weight":        int64(256),
		"cpuid":             "",
		"device_model":      "/usr/lib/xen/bin/qemu-dm",
		"disk_type":         "paravirtual",
		"kernel_path":       "/usr/lib/xen/boot/hvmloader",
		"migration_mode":    "non-live",
		"migration_port":    int64(8002),
		"nic_type":          "rtl8139",
		"pae":               true,
		"pci_pass":          "",
		"reboot_behavior":   "reboot",
		"soundhw":           "",
		"use_localtime":     false,
		"vif_script":        "",
		"vif_type":          "ioemu",
		"viridian":          false,
		"vnc_bind_address":  "0.0.0.0",
		"vnc_password_file": "/etc/ganeti/vnc-cluster-password",
		"xen_cmd":           "xm",
	},
	"xen-pvm": {
		"blockdev_prefix": "sd",
		"bootloader_args": "",
		"bootloader_path": "",
		"cpu_cap":         int64(0),
		"cpu_mask":        "all",
		"cpu_weight":      int64(256),
		"cpuid":           "",
		"initrd_path":     "",
		"kernel_args":     "ro",
		"kernel_path":     "/boot/vmlinuz-3-xenU",
		"migration_mode":  "live",
		"migration_port":  int64(8002),
		"reboot_behavior": "reboot",
		"root_path":       "/dev/xvda1",
		"soundhw":         "",
		"use_bootloader":  false,
		"vif_script":      "",
		"xen_cmd":         "xm",
	},
}

var defaultBEParams = Params{
	"always_failover": false,
	"auto_balance":    true,
	"maxmem":          int64(128),
	"minmem":          int64(128),
	"spindle_use":     int64(1),
	"vcpus":           int64(1),
}

var defaultNDParams = Params{
	"cpu_speed":         float64(1),
	"exclusive_storage": false,
	"oob_program":       "",
	"ovs":               false,
	"ovs_link":          "",
	"ovs_name":          "switch1",
	"spindle_count":     int64(1),
	"ssh_port":          int64(22),
}

var defaultDiskParams = map[string]Params{
	"blockdev": {},
	"diskless": {},
	"drbd": {
		"c-delay-target": int64(1),
		"c-fill-target":  int64(0),
		"c-max-rate":     int64(61440),
		"c-min-rate":     int64(4096),
		"c-plan-ahead":   int64(20),
		"data-stripes":   int64(1),
		"disk-barriers":  "n",
		"disk-custom":    "",
		"dynamic-resync": false,
		"meta-barriers":  false,
		"meta-stripes":   int64(1),
		"metavg":         "xenvg",
		"net-custom":     "",
		"protocol":       "C",
		"resync-rate":    int64(61440),
	},
	"ext": {
		"access": "kernelspace",
	},
	"file": {},
	"gluster": {
		"access": "kernelspace",
		"host":   "127.0.0.1",
		"port":   int64(24007),
		"volume": "gv0",
	},
	"plain": {
		"stripes": int64(1),
	},
	"rbd": {
		"access": "kernelspace",
		"pool":   "rbd",
	},
	"sharedfile": {},
}

var defaultIPolicy = Params{
	"minmax": []any{
		Params{
			"max": Params{
				"cpu-count":   int64(8),
				"disk-count":  int64(16),
				"disk-size":   int64(1048576),
				"memory-size": int64(32768),
				"nic-count":   int64(8),
				"spindle-use": int64(12),
			},
			"min": Params{
				"cpu-count":   int64(1),
				"disk-count":  int64(1),
				"disk-size":   int64(1024),
				"memory-size": int64(128),
				"nic-count":   int64(1),
				"spindle-use": int64(1),
			},
		},
	},
	"spindle-ratio": float64(32),
	"std": Params{
		"cpu-count":   int64(1),
		"disk-count":  int64(1),
		"disk-size":   int64(1024),
		"memory-size": int64(128),
		"nic-count":   int64(1),
		"spindle-use": int64(1),
	},
	"vcpu-ratio": float64(4),
}

var defaultDataCollectors = map[string]bool{"cpu-avg-load": true, "diskstats": true, "drbd": true, "inst-status-xen": true, "lv": true, "xen-cpu-avg-load": true}

var defaultDataCollectorInterval = map[string]int64{"cpu-avg-load": 5000000, "diskstats": 5000000, "drbd": 5000000, "inst-status-xen": 5000000, "lv": 5000000, "xen-cpu-avg-load": 5000000}
