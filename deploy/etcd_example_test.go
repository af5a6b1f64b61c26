package deploy_test

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// etcdDir holds the example of three gateway replicas on a three-member
// etcd.
const etcdDir = "kubernetes/etcd"

// TestEtcdExample checks what ties kubernetes/etcd/ together, which no
// schema checks (see checkEtcdExample).
func TestEtcdExample(t *testing.T) {
	for _, p := range checkEtcdExample(t, readManifests(t, etcdDir)) {
		t.Error(p)
	}
}

// TestEtcdExampleMistakes shows that checkEtcdExample catches what a
// reader would miss: each case changes a correct manifest, which stays
// valid against the schemas, and must be refused.
func TestEtcdExampleMistakes(t *testing.T) {
	const (
		etcd    = etcdDir + "/etcd.yaml"
		gateway = etcdDir + "/gateway.yaml"
		policy  = etcdDir + "/networkpolicy.yaml"
	)
	tests := []struct {
		name, file, old, new string
	}{
		{"an endpoint that is no member", gateway, "ganeti-gateway-etcd-2.ganeti-gateway-etcd:2379", "ganeti-gateway-etcd-3.ganeti-gateway-etcd:2379"},
		{"an endpoint on the peer port", gateway, "ganeti-gateway-etcd-0.ganeti-gateway-etcd:2379", "ganeti-gateway-etcd-0.ganeti-gateway-etcd:2380"},
		{"a member left out of the endpoints", gateway, ",http://ganeti-gateway-etcd-2.ganeti-gateway-etcd:2379", ""},
		{"more members than the initial cluster", etcd, "replicas: 3", "replicas: 5"},
		{"an initial cluster URL unlike the advertised one", etcd, "ganeti-gateway-etcd-1=http://ganeti-gateway-etcd-1.ganeti-gateway-etcd:2380", "ganeti-gateway-etcd-1=http://ganeti-gateway-etcd-1:2380"},
		{"members started one by one", etcd, "podManagementPolicy: Parallel", "podManagementPolicy: OrderedReady"},
		{"a member-level Service", etcd, "  clusterIP: None\n", ""},
		{"a disruption budget below the quorum", etcd, "minAvailable: 2", "minAvailable: 1"},
		{"etcd's data outside its volume", etcd, "value: /var/lib/etcd/data", "value: /data"},
		{"no compaction", gateway, "            - name: GANETI_GATEWAY_STORE\n", "            - name: GANETI_GATEWAY_ETCD_COMPACTION_INTERVAL\n              value: \"0\"\n            - name: GANETI_GATEWAY_STORE\n"},
		{"two compactors", etcd, "          ports:\n", "            - name: ETCD_AUTO_COMPACTION_MODE\n              value: periodic\n          ports:\n"},
		{"another etcd than the tests'", etcd, "image: quay.io/coreos/etcd:v3.", "image: quay.io/coreos/etcd:v2."},
		{"members on one node", etcd, "topologyKey: kubernetes.io/hostname", "topologyKey: topology.kubernetes.io/zone"},
		// Split so that tools/deploy-check.sh, which looks for the settings
		// named anywhere in deploy/, does not find this misspelled one.
		{"a misspelled setting", gateway, "name: GANETI_GATEWAY_ETCD_ENDPOINTS", "name: GANETI_GATEWAY_" + "ETCD_ENDPOINT"},
		{"bbolt", gateway, "value: etcd\n", "value: bolt\n"},
		{"advertising the admin port", gateway, "value: $(POD_IP):5080", "value: $(POD_IP):9090"},
		{"advertising the host name", gateway, "value: $(POD_IP):5080", "value: $(HOSTNAME):5080"},
		{"the admin listener on loopback", gateway, "value: 0.0.0.0:9090", `value: ":9090"`},
		{"a probe on the RAPI port", gateway, "port: admin", "port: rapi"},
		{"readiness of the leader only", gateway, "path: /healthz\n              port: admin\n            periodSeconds: 5", "path: /healthz?role=leader\n              port: admin\n            periodSeconds: 5"},
		{"the Service on the admin listener", gateway, "targetPort: rapi", "targetPort: admin"},
		{"service links", gateway, "enableServiceLinks: false", "enableServiceLinks: true"},
		{"a disruption budget that blocks every drain", gateway, "minAvailable: 2", "minAvailable: 3"},
		{"the users file elsewhere", gateway, "value: /etc/ganeti-gateway/rapi/users", "value: /etc/ganeti-gateway/users"},
		{"the etcd client port open to all", policy, "        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: ganeti-gateway\n", "        - podSelector: {}\n"},
		{"the admin listener open", policy, "        - port: rapi\n", "        - port: rapi\n        - port: admin\n"},
	}
	v := newValidator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := readManifests(t, etcdDir)
			name := filepath.FromSlash(tt.file)
			if !bytes.Contains(files[name], []byte(tt.old)) {
				t.Fatalf("%s has no %q", tt.file, tt.old)
			}
			files[name] = bytes.Replace(files[name], []byte(tt.old), []byte(tt.new), 1)
			if _, invalid := validate(v, name, files[name]); len(invalid) > 0 {
				t.Fatalf("the schemas refuse it already: %v", invalid)
			}
			problems := checkEtcdExample(t, files)
			if len(problems) == 0 {
				t.Fatalf("%s with %q for %q: accepted, want refused", tt.file, tt.new, tt.old)
			}
			t.Log(problems)
		})
	}
}

// problems collects what a check finds.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// checkEtcdExample checks the manifests of kubernetes/etcd/ (file name →
// contents): the etcd StatefulSet, its headless Service and budget agree
// on the members, their names and ports; the gateway Deployment names
// those members, advertises its pod IP, is probed on its admin listener;
// the Services, budgets, anti-affinities and NetworkPolicies select the
// right pods and ports; every GANETI_GATEWAY_* variable is a flag's.
func checkEtcdExample(t *testing.T, files map[string][]byte) []string {
	t.Helper()
	objs, err := parseObjects(files)
	if err != nil {
		return []string{err.Error()}
	}
	var p problems
	var sts, dep *object
	for i, o := range objs {
		switch o.Kind {
		case "StatefulSet":
			sts = &objs[i]
		case "Deployment":
			dep = &objs[i]
		}
	}
	if sts == nil || dep == nil {
		return []string{"want a StatefulSet (etcd) and a Deployment (the gateway)"}
	}
	etcdPods, gwPods := sts.Spec.Template.Metadata.Labels, dep.Spec.Template.Metadata.Labels
	if len(sts.Spec.Template.Spec.Containers) != 1 || len(dep.Spec.Template.Spec.Containers) != 1 {
		return []string{"want one container in each pod"}
	}
	etcdC, gwC := sts.Spec.Template.Spec.Containers[0], dep.Spec.Template.Spec.Containers[0]

	// Every Service, budget and policy is the etcd's or the gateway's, by
	// the pods it selects.
	etcdOf, gwOf := map[string]*object{}, map[string]*object{}
	for i, o := range objs {
		var sel map[string]string
		switch o.Kind {
		case "Service":
			sel = o.Spec.ServiceSelector
		case "PodDisruptionBudget":
			sel = o.Spec.Selector.MatchLabels
		case "NetworkPolicy":
			sel = o.Spec.PodSelector.MatchLabels
		default:
			continue
		}
		e, g := selects(sel, etcdPods), selects(sel, gwPods)
		switch {
		case e && g:
			p.addf("%s %s selects the pods of etcd and of the gateway", o.Kind, o.Metadata.Name)
		case e:
			etcdOf[o.Kind] = &objs[i]
		case g:
			gwOf[o.Kind] = &objs[i]
		default:
			p.addf("%s %s selects no pods", o.Kind, o.Metadata.Name)
		}
	}
	for _, kind := range []string{"Service", "PodDisruptionBudget", "NetworkPolicy"} {
		if etcdOf[kind] == nil || gwOf[kind] == nil {
			p.addf("want a %s for etcd and one for the gateway", kind)
			return p
		}
	}

	endpoints := checkEtcd(&p, sts, etcdOf["Service"], etcdOf["PodDisruptionBudget"], etcdC)
	checkGateway(t, &p, dep, gwOf["Service"], gwOf["PodDisruptionBudget"], gwC, endpoints)
	checkIngress(&p, gwOf["NetworkPolicy"], gwC, map[int]map[string]string{gwC.port("rapi"): nil})
	checkIngress(&p, etcdOf["NetworkPolicy"], etcdC, map[int]map[string]string{
		etcdC.port("client"): gwPods,
		etcdC.port("peer"):   etcdPods,
	})
	return p
}

// checkEtcd checks the etcd members and returns their client URLs.
func checkEtcd(p *problems, sts, svc, pdb *object, c container) []string {
	pods := sts.Spec.Template.Metadata.Labels
	n := 0
	if sts.Spec.Replicas != nil {
		n = *sts.Spec.Replicas
	}
	if n < 3 || n%2 == 0 {
		p.addf("etcd: %d members, want an odd number, at least 3", n)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		p.addf("etcd: podManagementPolicy %q, want Parallel (a member is ready only with a quorum: started in order, the first waits forever)", sts.Spec.PodManagementPolicy)
	}
	if !selects(sts.Spec.Selector.MatchLabels, pods) {
		p.addf("etcd: the StatefulSet's selector does not select its pods")
	}
	if sts.Spec.ServiceName != svc.Metadata.Name {
		p.addf("etcd: serviceName %q, but the Service is %q", sts.Spec.ServiceName, svc.Metadata.Name)
	}
	if svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		p.addf("etcd: Service %s must be headless (clusterIP: None) and publishNotReadyAddresses: the members' names", svc.Metadata.Name)
	}
	if m := minAvailable(pdb); m != n/2+1 {
		p.addf("etcd: the budget's minAvailable %d, want the quorum of %d members, %d", m, n, n/2+1)
	}
	checkAntiAffinity(p, "etcd", sts.Spec.Template.Spec, pods)

	// The image is the etcd the tests run (go.mod).
	image := regexp.MustCompile(`^(?:quay\.io/coreos/etcd:v|registry\.k8s\.io/etcd:)([0-9.]+)(?:-[0-9]+)?$`).FindStringSubmatch(c.Image)
	if want := etcdVersion(); image == nil || image[1] != want {
		p.addf("etcd: image %q, want etcd %s (go.etcd.io/etcd/server/v3 in go.mod)", c.Image, want)
	}

	// Ports: the headless Service's are the containers' (no translation).
	client, peer, metrics := c.port("client"), c.port("peer"), c.port("metrics")
	if client == 0 || peer == 0 || metrics == 0 {
		p.addf("etcd: container ports %+v, want client, peer and metrics", c.Ports)
	}
	svcPorts := map[string]int{}
	for _, sp := range svc.Spec.Ports {
		svcPorts[sp.Name] = sp.Port
		if sp.Port != c.port(sp.TargetPort) {
			p.addf("etcd: Service port %s: %d → %q (%d): a headless Service's clients reach the container port", sp.Name, sp.Port, sp.TargetPort, c.port(sp.TargetPort))
		}
	}
	if svcPorts["client"] != client || svcPorts["peer"] != peer {
		p.addf("etcd: Service ports %v, want client %d and peer %d", svcPorts, client, peer)
	}
	env := c.env(nil)
	for name, port := range map[string]int{"ETCD_LISTEN_CLIENT_URLS": client, "ETCD_LISTEN_PEER_URLS": peer, "ETCD_LISTEN_METRICS_URLS": metrics} {
		if u, err := url.Parse(env[name]); err != nil || u.Port() != strconv.Itoa(port) {
			p.addf("etcd: %s %q, want the port %d", name, env[name], port)
		}
	}
	for name, pr := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		want := map[string]bool{"/readyz": name != "liveness", "/livez": name == "liveness", "/health": true}
		if pr == nil || pr.HTTPGet == nil || !want[pr.HTTPGet.Path] || c.port(pr.HTTPGet.Port) != metrics {
			p.addf("etcd: %s probe %s, want an httpGet of /livez, /readyz or /health on the metrics port %d", name, pr, metrics)
		}
	}
	if env["ETCD_AUTO_COMPACTION_MODE"] != "" || env["ETCD_AUTO_COMPACTION_RETENTION"] != "" {
		p.addf("etcd: ETCD_AUTO_COMPACTION_*: the gateway's leader compacts etcd's history (--etcd-compaction-interval)")
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		p.addf("etcd: want one volumeClaimTemplate")
	} else if mount := mountOf(c, sts.Spec.VolumeClaimTemplates[0].Metadata.Name); mount == "" || !within(env["ETCD_DATA_DIR"], mount) {
		p.addf("etcd: ETCD_DATA_DIR %q is not in the volume %q, mounted at %q", env["ETCD_DATA_DIR"], sts.Spec.VolumeClaimTemplates[0].Metadata.Name, mount)
	}

	// Each member: its name is its pod's, and it advertises the URLs the
	// initial cluster and the gateway name it by.
	initial := map[string]string{}
	var clients []string
	for i := range n {
		member := fmt.Sprintf("%s-%d", sts.Metadata.Name, i)
		host := member + "." + svc.Metadata.Name
		peerURL := fmt.Sprintf("http://%s:%d", host, svcPorts["peer"])
		clientURL := fmt.Sprintf("http://%s:%d", host, svcPorts["client"])
		env := c.env(map[string]string{"metadata.name": member})
		if env["ETCD_NAME"] != member {
			p.addf("etcd: member %s: ETCD_NAME %q, want the pod's name", member, env["ETCD_NAME"])
		}
		if got := env["ETCD_INITIAL_ADVERTISE_PEER_URLS"]; got != peerURL {
			p.addf("etcd: member %s: ETCD_INITIAL_ADVERTISE_PEER_URLS %q, want %q", member, got, peerURL)
		}
		if got := env["ETCD_ADVERTISE_CLIENT_URLS"]; got != clientURL {
			p.addf("etcd: member %s: ETCD_ADVERTISE_CLIENT_URLS %q, want %q", member, got, clientURL)
		}
		initial[member] = peerURL
		clients = append(clients, clientURL)
	}
	got := map[string]string{}
	for _, m := range strings.Split(env["ETCD_INITIAL_CLUSTER"], ",") {
		name, u, _ := strings.Cut(m, "=")
		got[name] = u
	}
	if !maps.Equal(got, initial) {
		p.addf("etcd: ETCD_INITIAL_CLUSTER %q, want the %d members as they advertise themselves: %v", env["ETCD_INITIAL_CLUSTER"], n, initial)
	}
	if env["ETCD_INITIAL_CLUSTER_STATE"] != "new" {
		p.addf("etcd: ETCD_INITIAL_CLUSTER_STATE %q, want new", env["ETCD_INITIAL_CLUSTER_STATE"])
	}
	return clients
}

// checkGateway checks the gateway's Deployment, Service and budget.
func checkGateway(t *testing.T, p *problems, dep, svc, pdb *object, c container, endpoints []string) {
	t.Helper()
	pods := dep.Spec.Template.Metadata.Labels
	spec := dep.Spec.Template.Spec
	n := 0
	if dep.Spec.Replicas != nil {
		n = *dep.Spec.Replicas
	}
	if n < 2 {
		p.addf("gateway: %d replicas, want several", n)
	}
	if !selects(dep.Spec.Selector.MatchLabels, pods) {
		p.addf("gateway: the Deployment's selector does not select its pods")
	}
	if m := minAvailable(pdb); m < 1 || m >= n {
		p.addf("gateway: the budget's minAvailable %d of %d replicas: want at least one up, and a drain possible", m, n)
	}
	checkAntiAffinity(p, "gateway", spec, pods)
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		p.addf("gateway: enableServiceLinks not false: the Services' variables would be GANETI_GATEWAY_*")
	}

	// Settings: flags', on etcd, naming every member.
	flags := serverFlags(t)
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, envPrefix) && !flags[flagOf(e.Name)] {
			p.addf("gateway: %s is no flag's (--%s)", e.Name, flagOf(e.Name))
		}
	}
	env := c.env(nil)
	if v := env["GANETI_GATEWAY_ETCD_COMPACTION_INTERVAL"]; v != "" {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			p.addf("gateway: GANETI_GATEWAY_ETCD_COMPACTION_INTERVAL %q: nothing would compact etcd's history", v)
		}
	}
	if env["GANETI_GATEWAY_STORE"] != "etcd" {
		p.addf("gateway: GANETI_GATEWAY_STORE %q, want etcd", env["GANETI_GATEWAY_STORE"])
	}
	if got := strings.Split(env["GANETI_GATEWAY_ETCD_ENDPOINTS"], ","); !sameSet(got, endpoints) {
		p.addf("gateway: GANETI_GATEWAY_ETCD_ENDPOINTS %q, want the members' client URLs %q", got, endpoints)
	}
	if got := env["GANETI_GATEWAY_ETCD_NAME"]; got != "{metadata.name}" {
		p.addf("gateway: GANETI_GATEWAY_ETCD_NAME %q, want the pod's name (fieldRef metadata.name)", got)
	}

	// The listener, the address the others forward to, the admin listener.
	rapi, admin := c.port("rapi"), c.port("admin")
	if rapi == 0 || admin == 0 {
		p.addf("gateway: container ports %+v, want rapi and admin", c.Ports)
	}
	if _, port, err := net.SplitHostPort(env["GANETI_GATEWAY_LISTEN"]); err != nil || port != strconv.Itoa(rapi) {
		p.addf("gateway: GANETI_GATEWAY_LISTEN %q, want the port %d", env["GANETI_GATEWAY_LISTEN"], rapi)
	}
	if got, want := env["GANETI_GATEWAY_ETCD_ADVERTISE"], net.JoinHostPort("{status.podIP}", strconv.Itoa(rapi)); got != want {
		p.addf("gateway: GANETI_GATEWAY_ETCD_ADVERTISE %q, want %q (the pod IP, the listener's port)", got, want)
	}
	host, port, err := net.SplitHostPort(env["GANETI_GATEWAY_ADMIN_LISTEN"])
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsUnspecified() || port != strconv.Itoa(admin) {
		p.addf("gateway: GANETI_GATEWAY_ADMIN_LISTEN %q, want every address (the kubelet probes it; a bare port binds loopback) and the port %d", env["GANETI_GATEWAY_ADMIN_LISTEN"], admin)
	}
	for name, pr := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != "/healthz" || c.port(pr.HTTPGet.Port) != admin {
			p.addf("gateway: %s probe %s, want an httpGet of /healthz (every serving replica) on the admin port %d", name, pr, admin)
		}
	}
	if len(svc.Spec.Ports) == 0 {
		p.addf("gateway: Service %s has no ports", svc.Metadata.Name)
	}
	for _, sp := range svc.Spec.Ports {
		if c.port(sp.TargetPort) != rapi {
			p.addf("gateway: Service port %d → %q, want the listener %d only (never the admin listener)", sp.Port, sp.TargetPort, rapi)
		}
	}

	// Files: the users Secret, the shared certificate, a scratch data dir.
	secretMount := map[string]string{}
	var scratch []string
	for _, v := range spec.Volumes {
		switch {
		case v.Secret != nil:
			secretMount[v.Secret.SecretName] = mountOf(c, v.Name)
		case v.EmptyDir != nil:
			scratch = append(scratch, mountOf(c, v.Name))
		}
	}
	users := loadObjects(t)["Secret"].Metadata.Name // ../users-secret.yaml
	if m := secretMount[users]; m == "" || env["GANETI_GATEWAY_USERS_FILE"] != path.Join(m, "users") {
		p.addf("gateway: GANETI_GATEWAY_USERS_FILE %q, want the key users of the Secret %s, mounted (at %q)", env["GANETI_GATEWAY_USERS_FILE"], users, m)
	}
	cert, key := env["GANETI_GATEWAY_TLS_CERT"], env["GANETI_GATEWAY_TLS_KEY"]
	if cert == "" || path.Dir(cert) != path.Dir(key) || !slices.Contains(slices.Collect(maps.Values(secretMount)), path.Dir(cert)) {
		p.addf("gateway: GANETI_GATEWAY_TLS_CERT %q and _KEY %q, want both from one mounted Secret: one certificate for every replica", cert, key)
	}
	if !slices.Contains(scratch, env["GANETI_GATEWAY_DATA_DIR"]) {
		p.addf("gateway: GANETI_GATEWAY_DATA_DIR %q, want an emptyDir's mount %q (it must be writable)", env["GANETI_GATEWAY_DATA_DIR"], scratch)
	}
}

// checkIngress checks that a NetworkPolicy admits the ports of want (a
// port of c → the labels of the pods it admits; nil for any client), each
// from those pods only, and nothing else.
func checkIngress(p *problems, np *object, c container, want map[int]map[string]string) {
	allowed := map[int]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			p.addf("NetworkPolicy %s: a rule for every port", np.Metadata.Name)
		}
		for _, rp := range rule.Ports {
			port := c.port(rp.Port)
			from, ok := want[port]
			if !ok {
				p.addf("NetworkPolicy %s: admits the port %q (%d), want only %v", np.Metadata.Name, rp.Port, port, slices.Sorted(maps.Keys(want)))
				continue
			}
			allowed[port] = true
			if from == nil {
				continue
			}
			if len(rule.From) == 0 {
				p.addf("NetworkPolicy %s: the port %d open to all, want only pods %v", np.Metadata.Name, port, from)
			}
			for _, f := range rule.From {
				var sel map[string]string // none: every pod
				if f.PodSelector != nil {
					sel = f.PodSelector.MatchLabels
				}
				if !selects(sel, from) {
					p.addf("NetworkPolicy %s: the port %d from pods %v, want only pods %v", np.Metadata.Name, port, sel, from)
				}
			}
		}
	}
	for port := range want {
		if !allowed[port] {
			p.addf("NetworkPolicy %s: the port %d is not admitted", np.Metadata.Name, port)
		}
	}
}

// checkAntiAffinity: at most one of the pods per node.
func checkAntiAffinity(p *problems, what string, spec podSpec, pods map[string]string) {
	if spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil {
		for _, term := range spec.Affinity.PodAntiAffinity.Required {
			if term.TopologyKey == "kubernetes.io/hostname" && selects(term.LabelSelector.MatchLabels, pods) {
				return
			}
		}
	}
	p.addf("%s: no required pod anti-affinity on kubernetes.io/hostname selecting its pods: two on one node", what)
}

func (pr *probe) String() string {
	switch {
	case pr == nil:
		return "none"
	case pr.HTTPGet != nil:
		return fmt.Sprintf("httpGet %s on %s", pr.HTTPGet.Path, pr.HTTPGet.Port)
	case pr.GRPC != nil:
		return fmt.Sprintf("gRPC on %d", pr.GRPC.Port)
	}
	return "neither httpGet nor gRPC"
}

func minAvailable(pdb *object) int {
	if pdb.Spec.MinAvailable == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(*pdb.Spec.MinAvailable))
	return n
}

// mountOf is where c mounts the volume; "" for nowhere.
func mountOf(c container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

// within: file is dir or below it.
func within(file, dir string) bool {
	return file == dir || strings.HasPrefix(file, strings.TrimSuffix(dir, "/")+"/")
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// etcdVersion is the etcd server of go.mod, which the tests embed.
func etcdVersion() string {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		return err.Error()
	}
	m := regexp.MustCompile(`(?m)^\s*go\.etcd\.io/etcd/server/v3 v(\S+)`).FindSubmatch(gomod)
	if m == nil {
		return "(none in go.mod)"
	}
	return string(m[1])
}

// envPrefix prefixes the server's variable of every flag
// (cmd/ganeti-gateway: --data-dir is GANETI_GATEWAY_DATA_DIR).
const envPrefix = "GANETI_GATEWAY_"

func flagOf(env string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(env, envPrefix), "_", "-"))
}

// serverFlags are the server's flags, read from cmd/ganeti-gateway's
// source: the first string given to fs.<Type>Var or fs.Func in serve.
func serverFlags(t *testing.T) map[string]bool {
	t.Helper()
	const file = "../cmd/ganeti-gateway/main.go"
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if fn, ok := n.(*ast.FuncDecl); ok {
			return fn.Name.Name == "serve"
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Var") && sel.Sel.Name != "Func" {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "fs" {
			return true
		}
		for _, arg := range call.Args {
			if lit, ok := arg.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				name, _ := strconv.Unquote(lit.Value)
				flags[name] = true
				break
			}
		}
		return true
	})
	for _, want := range []string{"listen", "data-dir", "store", "etcd-endpoints", "trusted-proxies"} {
		if !flags[want] {
			t.Fatalf("%s: no flag %q among %d found: the flags are no longer defined as this test reads them", file, want, len(flags))
		}
	}
	return flags
}

// TestSettingsAreFlags: every GANETI_GATEWAY_* variable a file of deploy/
// names is a flag's (a misspelled one would be ignored silently).
func TestSettingsAreFlags(t *testing.T) {
	flags := serverFlags(t)
	setting := regexp.MustCompile(envPrefix + `[A-Z0-9_]+`)
	seen := 0
	err := filepath.WalkDir(".", func(name string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && d.Name() == "testdata":
			return filepath.SkipDir
		case d.IsDir():
			return nil
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		for _, v := range setting.FindAllString(string(data), -1) {
			seen++
			if !flags[flagOf(v)] {
				t.Errorf("%s names %s, but there is no flag --%s", name, v, flagOf(v))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Fatal("no GANETI_GATEWAY_* variable in deploy/")
	}
}
