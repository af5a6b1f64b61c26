package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// clusterExpectations are what a cluster file declares, read from the
// file itself (not through the server's model), for the client tests.
type clusterExpectations struct {
	Cluster   string   `json:"cluster"`
	Master    string   `json:"master"`
	Nodes     []string `json:"nodes"`
	Groups    []string `json:"groups"`
	Instances []string `json:"instances"`
	OS        []string `json:"os"`
	Networks  []string `json:"networks"`
}

func fileExpectations(t *testing.T, path string) clusterExpectations {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type named struct {
		Name     string   `json:"name"`
		Variants []string `json:"variants"`
	}
	var f struct {
		Cluster struct {
			Name   string `json:"name"`
			Master string `json:"master_node"`
		} `json:"cluster"`
		Groups    []named `json:"groups"`
		Nodes     []named `json:"nodes"`
		OSes      []named `json:"oses"`
		Networks  []named `json:"networks"`
		Instances []named `json:"instances"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	names := func(l []named) []string {
		out := []string{}
		for _, n := range l {
			out = append(out, n.Name)
		}
		return out
	}
	e := clusterExpectations{
		Cluster: f.Cluster.Name, Master: f.Cluster.Master,
		Nodes: names(f.Nodes), Groups: names(f.Groups), Instances: names(f.Instances), Networks: names(f.Networks),
		OS: []string{},
	}
	for _, o := range f.OSes {
		if len(o.Variants) == 0 {
			e.OS = append(e.OS, o.Name)
		}
		for _, v := range o.Variants {
			e.OS = append(e.OS, o.Name+"+"+v)
		}
	}
	return e
}

func demoExpectations(t *testing.T) clusterExpectations {
	return fileExpectations(t, filepath.Join(testutil.RepoRoot(t), "deploy", "demo-cluster.json"))
}
