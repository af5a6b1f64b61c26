package clusters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	ca := filepath.Join(dir, "ca.pem")
	for _, p := range []string{pw, ca} {
		if err := os.WriteFile(p, []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Parse([]byte(`
clusters:
- name: a
  upstream: [https://a1.example.com:5080, https://a2.example.com:5080]
  ca: ` + ca + `
  user: gw
  password_file: ` + pw + `
  hosts: [A.Example.com., rapi-a]
  default: true
- name: b
  upstream: unix:///var/run/ganeti/socket/ganeti-query
- name: lab
  upstream: sim
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Clusters) != 3 || f.Default() != "a" {
		t.Fatalf("parsed %+v", f)
	}
	if a := f.Clusters[0]; len(a.Upstream) != 2 || a.Hosts[0] != "a.example.com" || a.User != "gw" {
		t.Errorf("cluster a: %+v", a)
	}
	if b := f.Clusters[1]; len(b.Upstream) != 1 || b.IsSim() {
		t.Errorf("cluster b: %+v", b)
	}
	if !f.Clusters[2].IsSim() {
		t.Error("lab is the simulated cluster")
	}
	// JSON is YAML.
	if _, err := Parse([]byte(`{"clusters":[{"name":"x","upstream":"sim","default":true}]}`)); err != nil {
		t.Errorf("JSON: %v", err)
	}

	for _, tc := range []struct{ name, file, want string }{
		{"empty", ``, "no clusters"},
		{"no list", `clusters: []`, "no clusters"},
		{"unknown key", "clusters:\n- name: a\n  upstream: sim\n  colour: red", "unknown field"},
		{"unknown top key", "clusterz: []", "unknown field"},
		{"no name", "clusters:\n- upstream: sim", "cluster 1: no name"},
		{"bad name", "clusters:\n- name: A_b\n  upstream: sim", "lower-case DNS name"},
		{"no upstream", "clusters:\n- name: a", "no upstream"},
		{"duplicate", "clusters:\n- name: a\n  upstream: sim\n- name: a\n  upstream: https://x:5080", "a second cluster of that name"},
		{"host clash", "clusters:\n- name: a\n  upstream: sim\n  hosts: [h]\n- name: b\n  upstream: https://x:5080\n  hosts: [H]", `"h" is already cluster "a"'s`},
		{"host is other name", "clusters:\n- name: a\n  upstream: sim\n- name: b\n  upstream: https://x:5080\n  hosts: [a]", `"a" is already`},
		{"host with port", "clusters:\n- name: a\n  upstream: sim\n  hosts: [h:5080]", "without a port"},
		{"two defaults", "clusters:\n- name: a\n  upstream: sim\n  default: true\n- name: b\n  upstream: https://x:5080\n  default: true", "at most one cluster can be the default"},
		{"two sims", "clusters:\n- name: a\n  upstream: sim\n- name: b\n  upstream: sim", "at most one cluster can be the simulated"},
		{"sim with url", "clusters:\n- name: a\n  upstream: [sim, https://x:5080]", "only upstream"},
		{"sim with user", "clusters:\n- name: a\n  upstream: sim\n  user: u\n  password_file: " + pw, "takes no ca"},
		{"user alone", "clusters:\n- name: a\n  upstream: https://x:5080\n  user: u", "go together"},
		{"password in url", "clusters:\n- name: a\n  upstream: https://u:secret@x:5080", "never in the URL"},
		{"scheme", "clusters:\n- name: a\n  upstream: ftp://x", "unsupported scheme"},
		{"no host", "clusters:\n- name: a\n  upstream: 'https:///2'", "no host"},
		{"two sockets", "clusters:\n- name: a\n  upstream: [unix:///s, unix:///t]", "only upstream"},
		{"relative socket", "clusters:\n- name: a\n  upstream: unix://s", "absolute"},
		{"luxi with ca", "clusters:\n- name: a\n  upstream: unix:///s\n  ca: " + ca, "luxi upstream takes no"},
		{"ca and insecure", "clusters:\n- name: a\n  upstream: https://x:5080\n  ca: " + ca + "\n  insecure: true", "exclude"},
		{"missing ca", "clusters:\n- name: a\n  upstream: https://x:5080\n  ca: " + filepath.Join(dir, "nope"), "ca: stat"},
		{"password dir", "clusters:\n- name: a\n  upstream: https://x:5080\n  user: u\n  password_file: " + dir, "not a regular file"},
		{"upstream type", "clusters:\n- name: a\n  upstream: {x: 1}", "string or a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "--clusters") {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("clusters: [{name: a, upstream: sim}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := Load(p); err != nil || f.Clusters[0].Name != "a" {
		t.Errorf("Load: %v %+v", err, f)
	}
}
