package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// htoolsDir is where Debian's ganeti-htools-3.0 installs hbal, hspace and
// hscan (only the ganeti-htools package, which conflicts with ganeti, links
// them into /usr/bin).
const htoolsDir = "/usr/lib/ganeti/3.0/usr/bin"

// drbdMetaMiB is the DRBD metadata volume Ganeti adds to every drbd disk
// (constants.DRBD_META_SIZE), on both nodes.
const drbdMetaMiB = 128

// requireHtool returns the path of an htools program: on PATH (the
// Makefile appends htoolsDir), else in htoolsDir. Without it the test is
// skipped, or fails under CI=true.
func requireHtool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join(htoolsDir, name)
	if _, err := exec.LookPath(p); err == nil {
		return p
	}
	skipOrFailInCI(t, fmt.Sprintf("Debian's ganeti-htools-3.0 is needed (apt-get install ganeti-htools-3.0): %s is neither on PATH nor in %s", name, htoolsDir))
	return ""
}

// runHtool runs an htools program and returns its output (stdout and
// stderr); a non-zero exit fails the test.
func runHtool(t *testing.T, p *serverProcess, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", filepath.Base(path), strings.Join(args, " "), err, out, p.Logs())
	}
	return string(out)
}

// htFile is what the htools tests read of a cluster file, to compute what
// htools must report independently of the server's code.
type htFile struct {
	Cluster struct {
		MasterNode string   `json:"master_node"`
		Tags       []string `json:"tags"`
	} `json:"cluster"`
	Groups []struct {
		Name        string   `json:"name"`
		AllocPolicy string   `json:"alloc_policy"`
		Tags        []string `json:"tags"`
	} `json:"groups"`
	Nodes []struct {
		Name      string `json:"name"`
		Group     string `json:"group"`
		Offline   bool   `json:"offline"`
		Drained   bool   `json:"drained"`
		VMCapable *bool  `json:"vm_capable"`
		MTotal    int64  `json:"mtotal"`
		MNode     int64  `json:"mnode"`
		DTotal    int64  `json:"dtotal"`
		CTotal    int64  `json:"ctotal"`
	} `json:"nodes"`
	Instances []struct {
		Name         string `json:"name"`
		PNode        string `json:"pnode"`
		SNode        string `json:"snode"`
		DiskTemplate string `json:"disk_template"`
		AdminState   string `json:"admin_state"`
		Disks        []struct {
			Size int64 `json:"size"`
		} `json:"disks"`
		BEParams struct {
			MaxMem int64 `json:"maxmem"`
			VCPUs  int64 `json:"vcpus"`
		} `json:"beparams"`
		Tags []string `json:"tags"`
	} `json:"instances"`
}

// htNode is a node line of hscan's text format: name, total, node and
// free memory, total and free disk, CPUs, role (M master, Y offline or
// drained, N other), group.
type htNode struct {
	Name                               string
	TMem, NMem, FMem, TDsk, FDsk, TCpu int64
	Role, Group                        string
}

// htInstance is an instance line of hscan's text format.
type htInstance struct {
	Name                string
	Mem, Dsk, VCPUs     int64
	Status, AutoBalance string
	PNode, SNode, DT    string
	Tags                string // sorted, comma-separated
}

// htExpect is what htools must see on a cluster file's cluster.
type htExpect struct {
	groups    map[string][2]string // name -> alloc policy, sorted tags
	nodes     map[string]htNode
	instances map[string]htInstance
	tags      []string
	// hspace's totals: memory, disk and CPUs of the nodes htools reads
	// live, their free memory and disk.
	tMem, tDsk, tCpu, fMem, fDsk int64
}

// htoolsExpect reads a cluster file (which must declare every figure the
// computation uses) and computes what htools must report: the fake
// hypervisor's free memory is the node's memory minus its own and the
// maximum memory of its running primary instances; an LVM volume group's
// free disk is its size minus the plain disks of its primary instances and
// the drbd disks (plus their metadata) of its primary and secondary
// instances. Offline and non-vm-capable nodes report nothing (htools reads
// zeros); drained and offline nodes are offline to htools.
func htoolsExpect(t *testing.T, path string) htExpect {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(t), path))
	if err != nil {
		t.Fatal(err)
	}
	var f htFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	e := htExpect{groups: map[string][2]string{}, nodes: map[string]htNode{}, instances: map[string]htInstance{}, tags: f.Cluster.Tags}
	for _, g := range f.Groups {
		if g.AllocPolicy == "" {
			g.AllocPolicy = "preferred"
		}
		e.groups[g.Name] = [2]string{g.AllocPolicy, sortedJoin(g.Tags)}
	}
	memUsed, dskUsed := map[string]int64{}, map[string]int64{}
	for _, in := range f.Instances {
		if in.AdminState != "up" && in.AdminState != "down" || in.BEParams.MaxMem == 0 || in.BEParams.VCPUs == 0 {
			t.Fatalf("%s: instance %s must declare admin_state (up or down), beparams maxmem and vcpus", path, in.Name)
		}
		var usage int64
		for _, d := range in.Disks {
			usage += d.Size
			if in.DiskTemplate == "drbd" {
				usage += drbdMetaMiB
			}
		}
		status := "ADMIN_down"
		if in.AdminState == "up" {
			status = "running"
			memUsed[in.PNode] += in.BEParams.MaxMem
		}
		switch in.DiskTemplate {
		case "plain":
			dskUsed[in.PNode] += usage
		case "drbd":
			dskUsed[in.PNode] += usage
			dskUsed[in.SNode] += usage
		case "file", "diskless":
		default:
			t.Fatalf("%s: instance %s: disk template %q is not modelled here", path, in.Name, in.DiskTemplate)
		}
		e.instances[in.Name] = htInstance{Name: in.Name, Mem: in.BEParams.MaxMem, Dsk: usage, VCPUs: in.BEParams.VCPUs,
			Status: status, AutoBalance: "Y", PNode: in.PNode, SNode: in.SNode, DT: in.DiskTemplate, Tags: sortedJoin(in.Tags)}
	}
	for _, n := range f.Nodes {
		if n.MTotal == 0 || n.DTotal == 0 || n.CTotal == 0 {
			t.Fatalf("%s: node %s must declare mtotal, mnode, dtotal and ctotal", path, n.Name)
		}
		hn := htNode{Name: n.Name, Role: "Y", Group: n.Group}
		if !n.Offline && (n.VMCapable == nil || *n.VMCapable) {
			hn.TMem, hn.NMem, hn.TDsk, hn.TCpu = n.MTotal, n.MNode, n.DTotal, n.CTotal
			hn.FMem = n.MTotal - n.MNode - memUsed[n.Name]
			hn.FDsk = n.DTotal - dskUsed[n.Name]
			switch {
			case n.Drained:
			case n.Name == f.Cluster.MasterNode:
				hn.Role = "M"
			default:
				hn.Role = "N"
			}
		}
		e.nodes[n.Name] = hn
		e.tMem += hn.TMem
		e.tDsk += hn.TDsk
		e.tCpu += hn.TCpu
		e.fMem += hn.FMem
		e.fDsk += hn.FDsk
	}
	return e
}

func sortedJoin(s []string) string {
	s = slices.Clone(s)
	slices.Sort(s)
	return strings.Join(s, ",")
}

// hscanSections splits hscan's text format as htools' Text backend reads
// it: lines, in sections separated by empty lines (groups, nodes,
// instances, cluster tags, instance policies).
func hscanSections(data string) [][]string {
	lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
	sections := [][]string{{}}
	for _, l := range lines {
		if l == "" {
			sections = append(sections, []string{})
			continue
		}
		sections[len(sections)-1] = append(sections[len(sections)-1], l)
	}
	return sections
}

func atoi(t *testing.T, what, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %q is not an integer", what, s)
	}
	return n
}

// TestHtoolsReadCluster points Debian's hscan, hspace and hbal at a server
// on a multi-group cluster file (with an offline, a drained and a
// non-vm-capable node, and drbd, plain, file and diskless instances), over
// TLS without credentials (--allow-anonymous-reads; htools verify no
// certificate and send no credentials unless the URL has them). htools
// parse the bulk output strictly; what they report must match the figures
// computed from the cluster file, and hbal must find the layout balanced.
func TestHtoolsReadCluster(t *testing.T) {
	hscan, hspace, hbal := requireHtool(t, "hscan"), requireHtool(t, "hspace"), requireHtool(t, "hbal")
	const file = "testdata/htools-cluster.json"
	want := htoolsExpect(t, file)
	p := startServerInRepo(t, "", "--cluster-file", file, "--allow-anonymous-reads")
	_, port, _ := strings.Cut(p.Addr, ":")
	url := "https://localhost:" + port

	t.Run("hscan", func(t *testing.T) {
		dir := t.TempDir()
		out := runHtool(t, p, hscan, "-d", dir, url)
		// The summary: Name Nodes Inst BNode BInst t_mem f_mem t_disk f_disk Score.
		var summary []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 10 && f[0] == url {
				summary = f
			}
		}
		if summary == nil {
			t.Fatalf("no summary line for %s in:\n%s", url, out)
		}
		for i, w := range []int64{int64(len(want.nodes)), int64(len(want.instances)), 0, 0, want.tMem, want.fMem} {
			if got := atoi(t, "hscan summary", summary[i+1]); got != w {
				t.Errorf("hscan summary field %d: %d, want %d\n%s", i+1, got, w, out)
			}
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.data"))
		if len(files) != 1 {
			t.Fatalf("hscan wrote %v", files)
		}
		data, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		checkHscanData(t, string(data), want)
		if t.Failed() {
			t.Logf("hscan data:\n%s", data)
		}
	})

	t.Run("hspace", func(t *testing.T) {
		// -l 1: one allocation round is enough (the initial figures are
		// what is checked); unbounded, hspace fills the cluster for ~15 s.
		out := runHtool(t, p, hspace, "-m", url, "--machine-readable", "-l", "1")
		got := hspaceFigures(out)
		for k, w := range map[string]int64{
			"HTS_CLUSTER_NODES": int64(len(want.nodes)), "HTS_INI_INST_CNT": int64(len(want.instances)),
			"HTS_CLUSTER_MEM": want.tMem, "HTS_CLUSTER_DSK": want.tDsk, "HTS_CLUSTER_CPU": want.tCpu,
			"HTS_INI_MEM_FREE": want.fMem, "HTS_INI_DSK_FREE": want.fDsk,
		} {
			if got[k] != strconv.FormatInt(w, 10) {
				t.Errorf("hspace %s=%s, want %d (from %s)", k, got[k], w, file)
			}
		}
		if t.Failed() {
			t.Logf("hspace output:\n%s", out)
		}
	})

	// hbal balances one group at a time (-G is required with several).
	for g := range want.groups {
		t.Run("hbal-"+g, func(t *testing.T) {
			plan := parseHbal(t, runHtool(t, p, hbal, "-m", url, "-G", g, "-C"))
			if plan.length != 0 {
				t.Errorf("hbal proposes %d moves on the balanced group %s:\n%s", plan.length, g, plan.out)
			}
		})
	}
}

// checkHscanData compares hscan's output file with the expectations.
func checkHscanData(t *testing.T, data string, want htExpect) {
	t.Helper()
	sec := hscanSections(data)
	if len(sec) != 5 {
		t.Fatalf("hscan data has %d sections, want 5 (groups, nodes, instances, tags, policies)", len(sec))
	}
	groupOf := map[string]string{} // uuid -> name
	for _, l := range sec[0] {
		f := strings.Split(l, "|")
		if len(f) < 4 {
			t.Errorf("group line %q", l)
			continue
		}
		groupOf[f[1]] = f[0]
		if w, ok := want.groups[f[0]]; !ok || f[2] != w[0] || sortedJoin(strings.Split(f[3], ",")) != w[1] {
			t.Errorf("group line %q, want policy and tags %v", l, w)
		}
	}
	if len(sec[0]) != len(want.groups) {
		t.Errorf("%d group lines, want %d", len(sec[0]), len(want.groups))
	}
	seen := map[string]bool{}
	for _, l := range sec[1] {
		f := strings.Split(l, "|")
		if len(f) < 9 {
			t.Errorf("node line %q", l)
			continue
		}
		got := htNode{Name: f[0], Role: f[7], Group: groupOf[f[8]]}
		for i, p := range []*int64{&got.TMem, &got.NMem, &got.FMem, &got.TDsk, &got.FDsk, &got.TCpu} {
			*p = atoi(t, "node "+f[0], f[i+1])
		}
		seen[got.Name] = true
		if w := want.nodes[got.Name]; got != w {
			t.Errorf("node %s: hscan %+v, want %+v", got.Name, got, w)
		}
	}
	if len(seen) != len(want.nodes) {
		t.Errorf("%d node lines, want %d", len(seen), len(want.nodes))
	}
	seen = map[string]bool{}
	for _, l := range sec[2] {
		f := strings.Split(l, "|")
		if len(f) < 10 {
			t.Errorf("instance line %q", l)
			continue
		}
		got := htInstance{Name: f[0], Mem: atoi(t, f[0], f[1]), Dsk: atoi(t, f[0], f[2]), VCPUs: atoi(t, f[0], f[3]),
			Status: f[4], AutoBalance: f[5], PNode: f[6], SNode: f[7], DT: f[8]}
		if f[9] != "" {
			got.Tags = sortedJoin(strings.Split(f[9], ","))
		}
		seen[got.Name] = true
		if w := want.instances[got.Name]; got != w {
			t.Errorf("instance %s: hscan %+v, want %+v", got.Name, got, w)
		}
	}
	if len(seen) != len(want.instances) {
		t.Errorf("%d instance lines, want %d", len(seen), len(want.instances))
	}
	if sortedJoin(sec[3]) != sortedJoin(want.tags) {
		t.Errorf("cluster tags %v, want %v", sec[3], want.tags)
	}
	// Policies: the cluster's (empty owner), then one per group.
	if len(sec[4]) != 1+len(want.groups) || !strings.HasPrefix(sec[4][0], "|") {
		t.Errorf("policy section %q", sec[4])
	}
}

// hbalPlan is what hbal -C printed.
type hbalPlan struct {
	out            string
	length         int
	initial, final string       // scores, as printed
	jobsets        [][][]string // jobset -> job -> gnt-instance commands
}

func parseHbal(t *testing.T, out string) hbalPlan {
	t.Helper()
	plan := hbalPlan{out: out, length: -1}
	improved := regexp.MustCompile(`^Cluster score improved from (\S+) to (\S+)$`)
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "Initial score: "):
			plan.initial = strings.TrimPrefix(l, "Initial score: ")
		case improved.MatchString(l):
			plan.final = improved.FindStringSubmatch(l)[2]
		case strings.HasPrefix(l, "Solution length="):
			plan.length = int(atoi(t, "hbal solution length", strings.TrimPrefix(l, "Solution length=")))
		case strings.HasPrefix(l, "echo jobset "):
			plan.jobsets = append(plan.jobsets, nil)
		case strings.HasPrefix(l, "echo job "):
			if len(plan.jobsets) == 0 {
				t.Fatalf("hbal: a job outside a jobset:\n%s", out)
			}
			js := &plan.jobsets[len(plan.jobsets)-1]
			*js = append(*js, nil)
		case strings.HasPrefix(l, "gnt-"):
			if len(plan.jobsets) == 0 || len(plan.jobsets[len(plan.jobsets)-1]) == 0 {
				t.Fatalf("hbal: a command outside a job:\n%s", out)
			}
			js := plan.jobsets[len(plan.jobsets)-1]
			js[len(js)-1] = append(js[len(js)-1], l)
		}
	}
	if plan.length < 0 || plan.initial == "" {
		t.Fatalf("unexpected hbal output:\n%s", out)
	}
	return plan
}

// TestHbalBalancesOverRAPI starts a server on a cluster made unbalanced on
// purpose (every drbd instance on the same two nodes of four), over plain
// HTTP with authentication required: hbal reads it with a read-only user
// given in the URL. hbal proposes moves; each gnt-instance command of its
// plan (-C) is replayed as the matching RAPI request, a job that must
// succeed. Then hbal finds the cluster at the score it predicted, with
// nothing left to move.
func TestHbalBalancesOverRAPI(t *testing.T) {
	hbal := requireHtool(t, "hbal")
	const file = "testdata/unbalanced-cluster.json"
	want := htoolsExpect(t, file)
	p := startServerInRepo(t, "", "--cluster-file", file, "--insecure")
	htURL := "http://reader:readpass@" + p.Addr
	base := "http://" + e2eUser + ":" + e2ePassword + "@" + p.Addr

	// hbal prints names without their common domain suffix.
	var names []string
	for n := range want.nodes {
		names = append(names, n)
	}
	for n := range want.instances {
		names = append(names, n)
	}
	fullName := func(short string) string {
		var found []string
		for _, n := range names {
			if n == short || strings.HasPrefix(n, short+".") {
				found = append(found, n)
			}
		}
		if len(found) != 1 {
			t.Fatalf("hbal's name %q matches %v", short, found)
		}
		return found[0]
	}

	before := parseHbal(t, runHtool(t, p, hbal, "-m", htURL, "-C"))
	t.Logf("hbal on the unbalanced cluster:\n%s", before.out)
	if before.length < 1 || len(before.jobsets) == 0 || before.final == "" {
		t.Fatalf("hbal proposes no moves on the unbalanced cluster:\n%s", before.out)
	}
	commands := 0
	for _, jobset := range before.jobsets {
		// Jobs of a jobset are independent; run them one after the other.
		for _, job := range jobset {
			for _, cmd := range job {
				method, path, body := hbalCommandRequest(t, cmd, fullName)
				status, _, resp := do(t, method, base+path, "application/json", body)
				var id int64
				if status != 200 || json.Unmarshal(resp, &id) != nil {
					t.Fatalf("%s (%s %s %s): %d %s", cmd, method, path, body, status, resp)
				}
				if j := waitJob(t, base, id); j["status"] != "success" {
					t.Fatalf("%s: job %d ended %v: %v", cmd, id, j["status"], j["opresult"])
				}
				commands++
			}
		}
	}
	if commands == 0 {
		t.Fatalf("no gnt-instance commands in hbal's plan:\n%s", before.out)
	}

	after := parseHbal(t, runHtool(t, p, hbal, "-m", htURL, "-C"))
	if after.length != 0 || len(after.jobsets) != 0 {
		t.Errorf("after %d commands, hbal still proposes %d moves:\n%s", commands, after.length, after.out)
	}
	if after.initial != before.final {
		t.Errorf("after the moves hbal scores the cluster %s, it predicted %s", after.initial, before.final)
	}
}

// hbalCommandRequest translates one gnt-instance command of hbal's plan
// into the RAPI request that does the same: (method, path, JSON body).
func hbalCommandRequest(t *testing.T, cmd string, fullName func(string) string) (string, string, string) {
	t.Helper()
	f := strings.Fields(cmd)
	if len(f) < 3 || f[0] != "gnt-instance" {
		t.Fatalf("hbal command %q: not a gnt-instance command", cmd)
	}
	verb, args, inst := f[1], f[2:len(f)-1], fullName(f[len(f)-1])
	params := map[string]any{}
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "-f": // no confirmation: nothing to do over RAPI
		case args[i] == "-n" && i+1 < len(args):
			i++
			switch verb {
			case "migrate", "failover":
				params["target_node"] = fullName(args[i])
			case "replace-disks":
				params["mode"] = "replace_new_secondary"
				params["remote_node"] = fullName(args[i])
			}
		default:
			t.Fatalf("hbal command %q: option %q not translated", cmd, args[i])
		}
	}
	body, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	switch verb {
	case "migrate", "failover":
		return "PUT", "/2/instances/" + inst + "/" + verb, string(body)
	case "replace-disks":
		if params["mode"] == nil {
			t.Fatalf("hbal command %q: replace-disks without a new secondary", cmd)
		}
		return "POST", "/2/instances/" + inst + "/replace-disks", string(body)
	}
	t.Fatalf("hbal command %q: %s not translated", cmd, verb)
	return "", "", ""
}

// hspaceFigures are the HTS_* figures of hspace's --machine-readable
// output, by name.
func hspaceFigures(out string) map[string]string {
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "HTS_") {
			got[k] = v
		}
	}
	return got
}
