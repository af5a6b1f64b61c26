package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/yannh/kubeconform/pkg/validator"
	"sigs.k8s.io/yaml"

	"github.com/ganeti-gateway/ganeti-gateway/internal/auth"
	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
	"github.com/ganeti-gateway/ganeti-gateway/internal/store/memstore"
)

// schemaDir holds the Kubernetes JSON schemas the manifests are validated
// against, offline (kubernetes/testdata/schemas/README.md says where they
// come from).
const schemaDir = "kubernetes/testdata/schemas"

// manifestKinds are the kinds each directory of manifests must hold:
// kubernetes/ one replica on bbolt, kubernetes/etcd/ three replicas on a
// three-member etcd.
var manifestKinds = map[string][]string{
	"kubernetes":      {"PodDisruptionBudget", "Secret", "Service", "StatefulSet"},
	"kubernetes/etcd": {"Deployment", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget", "PodDisruptionBudget", "Service", "Service", "StatefulSet"},
}

func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	dir, err := filepath.Abs(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := validator.New(
		[]string{filepath.Join(dir, "{{ .ResourceKind }}{{ .KindSuffix }}.json")},
		validator.Opts{Strict: true}, // unknown fields and duplicate keys are errors
	)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// validate validates every resource of a manifest file's contents and
// returns the kinds of the valid ones and a description of every problem.
func validate(v validator.Validator, name string, data []byte) (kinds, problems []string) {
	for _, res := range v.Validate(name, io.NopCloser(bytes.NewReader(data))) {
		sig, _ := res.Resource.Signature()
		kind := "?"
		if sig != nil {
			kind = sig.Kind
		}
		switch res.Status {
		case validator.Valid:
			kinds = append(kinds, kind)
		case validator.Invalid:
			for _, ve := range res.ValidationErrors {
				problems = append(problems, name+": "+kind+": "+ve.Path+": "+ve.Msg)
			}
			if len(res.ValidationErrors) == 0 {
				problems = append(problems, name+": "+kind+": "+res.Err.Error())
			}
		case validator.Error:
			problems = append(problems, name+": "+kind+": "+res.Err.Error())
		case validator.Skipped:
			problems = append(problems, name+": "+kind+": skipped")
		case validator.Empty:
			problems = append(problems, name+": an empty document")
		}
	}
	return kinds, problems
}

// readManifests reads the manifests of dir (not its subdirectories): file
// name → contents.
func readManifests(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s/", dir)
	}
	m := map[string][]byte{}
	for _, file := range files {
		if m[file], err = os.ReadFile(file); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestManifests validates every manifest of deploy/kubernetes/ and
// deploy/kubernetes/etcd/ strictly against the Kubernetes schemas.
func TestManifests(t *testing.T) {
	v := newValidator(t)
	for dir, want := range manifestKinds {
		var all []string
		for file, data := range readManifests(t, dir) {
			kinds, problems := validate(v, file, data)
			for _, p := range problems {
				t.Error(p)
			}
			all = append(all, kinds...)
		}
		slices.Sort(all)
		if !slices.Equal(all, want) {
			t.Errorf("%s: valid kinds %v, want %v", dir, all, want)
		}
	}
}

// TestManifestMistakes shows that the validation catches what a reader
// would miss: each case changes a correct manifest and must be refused.
func TestManifestMistakes(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name, file, old, new string
	}{
		{"misspelled field", "statefulset.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"misspelled field in a list", "statefulset.yaml", "containerPort:", "containerport:"},
		{"field at the wrong level", "service.yaml", "  selector:", "  podSelector:"},
		{"wrong type", "statefulset.yaml", "replicas: 1", "replicas: one"},
		{"string for an integer", "statefulset.yaml", "periodSeconds: 5", `periodSeconds: "5"`},
		{"missing required field", "statefulset.yaml", "  serviceName: ganeti-gateway\n", ""},
		{"duplicate key", "service.yaml", "  type: ClusterIP\n", "  type: ClusterIP\n  type: NodePort\n"},
		{"unknown kind", "poddisruptionbudget.yaml", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets"},
		{"misspelled field in a Deployment", "etcd/gateway.yaml", "maxUnavailable:", "maxUnavailble:"},
		{"fieldRef at the wrong level", "etcd/gateway.yaml", "              valueFrom:\n                fieldRef:", "              fieldRef:\n                fieldRef:"},
		{"a list for a selector", "etcd/networkpolicy.yaml", "  podSelector:\n    matchLabels:", "  podSelector:\n    - matchLabels:"},
		{"string for a boolean", "etcd/etcd.yaml", "publishNotReadyAddresses: true", `publishNotReadyAddresses: "yes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("kubernetes", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(data, []byte(tt.old)) {
				t.Fatalf("%s has no %q", tt.file, tt.old)
			}
			changed := bytes.Replace(data, []byte(tt.old), []byte(tt.new), 1)
			_, problems := validate(v, tt.file, changed)
			if len(problems) == 0 {
				t.Fatalf("%s with %q for %q: valid, want refused", tt.file, tt.new, tt.old)
			}
			t.Log(problems)
		})
	}
}

// The parts of the manifests that must agree with each other, which no
// schema checks.
type (
	meta struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	}
	selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	// intOrString is a port (a number or a container port's name) or a
	// count, as written.
	intOrString string
	probe       struct {
		GRPC *struct {
			Port int `json:"port"`
		} `json:"grpc"`
		HTTPGet *struct {
			Path string      `json:"path"`
			Port intOrString `json:"port"`
		} `json:"httpGet"`
	}
	envVar struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `json:"fieldPath"`
			} `json:"fieldRef"`
		} `json:"valueFrom"`
	}
	container struct {
		Image string   `json:"image"`
		Env   []envVar `json:"env"`
		Ports []struct {
			Name          string `json:"name"`
			ContainerPort int    `json:"containerPort"`
		} `json:"ports"`
		StartupProbe   *probe `json:"startupProbe"`
		ReadinessProbe *probe `json:"readinessProbe"`
		LivenessProbe  *probe `json:"livenessProbe"`
		VolumeMounts   []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
		} `json:"volumeMounts"`
	}
	podSpec struct {
		EnableServiceLinks *bool `json:"enableServiceLinks"`
		Affinity           *struct {
			PodAntiAffinity *struct {
				Required []struct {
					TopologyKey   string   `json:"topologyKey"`
					LabelSelector selector `json:"labelSelector"`
				} `json:"requiredDuringSchedulingIgnoredDuringExecution"`
			} `json:"podAntiAffinity"`
		} `json:"affinity"`
		Containers []container `json:"containers"`
		Volumes    []struct {
			Name   string `json:"name"`
			Secret *struct {
				SecretName string `json:"secretName"`
			} `json:"secret"`
			EmptyDir *struct{} `json:"emptyDir"`
		} `json:"volumes"`
	}
	object struct {
		Kind       string            `json:"kind"`
		Metadata   meta              `json:"metadata"`
		StringData map[string]string `json:"stringData"`
		Spec       struct {
			// StatefulSet, Deployment
			Replicas            *int     `json:"replicas"`
			ServiceName         string   `json:"serviceName"`
			PodManagementPolicy string   `json:"podManagementPolicy"`
			Selector            selector `json:"selector"` // also PodDisruptionBudget
			Template            struct {
				Metadata meta    `json:"metadata"`
				Spec     podSpec `json:"spec"`
			} `json:"template"`
			VolumeClaimTemplates []struct {
				Metadata meta `json:"metadata"`
			} `json:"volumeClaimTemplates"`
			// Service
			ServiceSelector          map[string]string `json:"-"`
			ClusterIP                string            `json:"clusterIP"`
			PublishNotReadyAddresses bool              `json:"publishNotReadyAddresses"`
			Ports                    []struct {
				Name        string      `json:"name"`
				Port        int         `json:"port"`
				TargetPort  intOrString `json:"targetPort"`
				AppProtocol string      `json:"appProtocol"`
			} `json:"ports"`
			// PodDisruptionBudget
			MinAvailable *intOrString `json:"minAvailable"`
			// NetworkPolicy
			PodSelector selector `json:"podSelector"`
			Ingress     []struct {
				From []struct {
					PodSelector *selector `json:"podSelector"`
				} `json:"from"`
				Ports []struct {
					Port intOrString `json:"port"`
				} `json:"ports"`
			} `json:"ingress"`
		} `json:"spec"`
	}
)

func (v *intOrString) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		*v = intOrString(s)
		return nil
	}
	var n int
	if err := json.Unmarshal(data, &n); err != nil {
		return err
	}
	*v = intOrString(strconv.Itoa(n))
	return nil
}

// port is the number of a port as a probe, a Service or a NetworkPolicy
// names it (a number, or the name of one of c's ports); 0 for none.
func (c container) port(p intOrString) int {
	if n, err := strconv.Atoi(string(p)); err == nil {
		return n
	}
	for _, cp := range c.Ports {
		if cp.Name == string(p) {
			return cp.ContainerPort
		}
	}
	return 0
}

// env is c's environment as the kubelet makes it: a $(NAME) of a variable
// defined before is replaced by its value; a variable from a fieldRef has
// fields[fieldPath], else "{fieldPath}".
func (c container) env(fields map[string]string) map[string]string {
	env := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		v := ref.ReplaceAllStringFunc(e.Value, func(m string) string {
			if val, ok := env[m[2:len(m)-1]]; ok {
				return val
			}
			return m
		})
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			path := e.ValueFrom.FieldRef.FieldPath
			if v = fields[path]; v == "" {
				v = "{" + path + "}"
			}
		}
		env[e.Name] = v
	}
	return env
}

// parseObjects reads the objects of manifest files (name → contents).
func parseObjects(files map[string][]byte) ([]object, error) {
	var objs []object
	for _, file := range slices.Sorted(maps.Keys(files)) {
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(files[file]), -1) {
			var o object
			if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if o.Kind == "Service" {
				// A Service's selector is a plain map, not a LabelSelector.
				var s struct {
					Spec struct {
						Selector map[string]string `json:"selector"`
					} `json:"spec"`
				}
				if err := yaml.Unmarshal([]byte(doc), &s); err != nil {
					return nil, fmt.Errorf("%s: %w", file, err)
				}
				o.Spec.ServiceSelector = s.Spec.Selector
			}
			if o.Kind != "" {
				objs = append(objs, o)
			}
		}
	}
	return objs, nil
}

// loadObjects reads the manifests of deploy/kubernetes/ into objects by
// kind (one of each).
func loadObjects(t *testing.T) map[string]object {
	t.Helper()
	list, err := parseObjects(readManifests(t, "kubernetes"))
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]object{}
	for _, o := range list {
		objs[o.Kind] = o
	}
	return objs
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestManifestsAgree checks what ties the manifests together: one replica,
// selectors that select the pod, the Service and probes on the container's
// port, the volumes where the server's settings point.
func TestManifestsAgree(t *testing.T) {
	objs := loadObjects(t)
	sts, svc, pdb, secret := objs["StatefulSet"], objs["Service"], objs["PodDisruptionBudget"], objs["Secret"]
	podLabels := sts.Spec.Template.Metadata.Labels

	if r := sts.Spec.Replicas; r == nil || *r != 1 {
		t.Errorf("StatefulSet replicas %v, want 1 (bbolt has a single writer)", r)
	}
	if !selects(sts.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector.MatchLabels, podLabels)
	}
	if !selects(svc.Spec.ServiceSelector, podLabels) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.ServiceSelector, podLabels)
	}
	if !selects(pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", pdb.Spec.Selector.MatchLabels, podLabels)
	}
	if sts.Spec.ServiceName != svc.Metadata.Name {
		t.Errorf("StatefulSet serviceName %q, Service %q", sts.Spec.ServiceName, svc.Metadata.Name)
	}

	if n := len(sts.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 5080 {
		t.Fatalf("container ports %+v, want one: 5080", c.Ports)
	}
	port := c.Ports[0]
	if len(svc.Spec.Ports) != 1 {
		t.Fatalf("Service ports %+v, want one", svc.Spec.Ports)
	}
	sp := svc.Spec.Ports[0]
	if sp.Port != 5080 || string(sp.TargetPort) != port.Name {
		t.Errorf("Service port %d → %q, want 5080 → %q", sp.Port, sp.TargetPort, port.Name)
	}
	if env["GANETI_GATEWAY_INSECURE"] == "true" && sp.AppProtocol != "kubernetes.io/h2c" {
		t.Errorf("Service appProtocol %q for an --insecure server, want kubernetes.io/h2c", sp.AppProtocol)
	}
	for name, p := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.GRPC == nil || p.GRPC.Port != port.ContainerPort {
			t.Errorf("%s probe %+v, want gRPC on %d", name, p, port.ContainerPort)
		}
	}

	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("volumeClaimTemplates %+v, want one", sts.Spec.VolumeClaimTemplates)
	}
	data := sts.Spec.VolumeClaimTemplates[0].Metadata.Name
	if mounts[data] == "" || mounts[data] != env["GANETI_GATEWAY_DATA_DIR"] {
		t.Errorf("volume %q mounted at %q, GANETI_GATEWAY_DATA_DIR %q", data, mounts[data], env["GANETI_GATEWAY_DATA_DIR"])
	}
	var usersVolume string
	for _, vol := range sts.Spec.Template.Spec.Volumes {
		if vol.Secret != nil && vol.Secret.SecretName == secret.Metadata.Name {
			usersVolume = vol.Name
		}
	}
	if usersVolume == "" {
		t.Fatalf("no volume of the Secret %q", secret.Metadata.Name)
	}
	if got, want := env["GANETI_GATEWAY_USERS_FILE"], filepath.Join(mounts[usersVolume], "users"); got != want {
		t.Errorf("GANETI_GATEWAY_USERS_FILE %q, want %q (the Secret's key users, mounted)", got, want)
	}
	checkUsersFile(t, "Secret "+secret.Metadata.Name, secret.StringData["users"])
}

// checkUsersFile parses a users file as the server does: no warnings, at
// least one user, and every password an {HA1} hash.
func checkUsersFile(t *testing.T, name, data string) {
	t.Helper()
	table, warns, err := auth.ParseUsers([]byte(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	for _, w := range warns {
		t.Errorf("%s: %s", name, w)
	}
	users := 0
	for _, line := range strings.Split(data, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		users++
		if len(fields) < 2 || !strings.HasPrefix(strings.ToUpper(fields[1]), "{HA1}") {
			t.Errorf("%s: user %q: the password is not an {HA1} hash", name, fields[0])
		}
	}
	if users == 0 || table.Len() != users {
		t.Errorf("%s: %d users parsed from %d lines", name, table.Len(), users)
	}
}

// TestExampleUsers loads deploy/examples/users as the server does.
func TestExampleUsers(t *testing.T) {
	data, err := os.ReadFile("examples/users")
	if err != nil {
		t.Fatal(err)
	}
	checkUsersFile(t, "examples/users", string(data))
}

// TestExampleCluster loads deploy/examples/cluster.json with the server's
// loader: parsed, then seeded into a store.
func TestExampleCluster(t *testing.T) {
	data, err := os.ReadFile("examples/cluster.json")
	if err != nil {
		t.Fatal(err)
	}
	f, err := cluster.ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cluster.Open(memstore.New(), f, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := m.State()
	nodes, instances := st.Names("node"), st.Names("instance")
	if len(nodes) != 2 || len(instances) != 2 {
		t.Errorf("nodes %v and instances %v, want 2 of each", nodes, instances)
	}
}

// TestContainerfileGoVersion: the builder image has the Go of go.mod.
func TestContainerfileGoVersion(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	cf, err := os.ReadFile("container/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	image := regexp.MustCompile(`(?m)^ARG GO_IMAGE=\S+/golang:([0-9.]+)-\S+$`).FindSubmatch(cf)
	if goLine == nil || image == nil {
		t.Fatalf("go.mod go line %q, Containerfile GO_IMAGE %q", goLine, image)
	}
	if string(goLine[1]) != string(image[1]) {
		t.Errorf("Containerfile builds with Go %s, go.mod says %s", image[1], goLine[1])
	}
}
