package cluster

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/store"
	"github.com/ganeti-gateway/ganeti-gateway/internal/testutil"
)

// TestHypervisorParametersAreGanetis: the parameters each hypervisor
// supports (derived from its defaults) are the ones a real Ganeti 3.0.2
// publishes for it in /2/info (captures seq 4), and together they are
// constants.json's hvparams.
func TestHypervisorParametersAreGanetis(t *testing.T) {
	caps := loadCaptures(t)
	var info struct {
		HVParams map[string]map[string]any `json:"hvparams"`
	}
	if c := caps[4]; c.Path != "/2/info" {
		t.Fatalf("capture 4 is %s", c.Path)
	} else if err := json.Unmarshal([]byte(c.ResponseBody), &info); err != nil {
		t.Fatal(err)
	}
	union := map[string]bool{}
	for _, hv := range Hypervisors {
		got, ok := HypervisorParameters(hv)
		if !ok {
			t.Fatalf("no parameters for %s", hv)
		}
		want := info.HVParams[hv]
		if len(want) == 0 {
			t.Fatalf("capture has no parameters for %s", hv)
		}
		if g, w := keys(got), keys(want); !slices.Equal(g, w) {
			t.Errorf("%s supports %v, Ganeti %v", hv, g, w)
		}
		for k := range got {
			union[k] = true
		}
	}
	if _, ok := HypervisorParameters("vmware"); ok {
		t.Error("an unknown hypervisor has parameters")
	}
	data, err := os.ReadFile(filepath.Join(testutil.SharedDir(t), "spec", "constants.json"))
	if err != nil {
		t.Fatal(err)
	}
	var consts struct {
		HVParams map[string]string `json:"hvparams"`
	}
	if err := json.Unmarshal(data, &consts); err != nil {
		t.Fatal(err)
	}
	if g, w := keys(union), keys(consts.HVParams); !slices.Equal(g, w) {
		t.Errorf("all hypervisors support %v, constants.json lists %v", g, w)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestNetworkGroupParameters: a group's connection parameters are shown as
// they are, an empty VLAN as "" (Ganeti's network query); only a missing
// one is "-".
func TestNetworkGroupParameters(t *testing.T) {
	m := modelFromJSON(t, testCluster)
	groupList := func() string {
		t.Helper()
		cells, err := m.State().Get(ResNetwork, "net1", []string{"group_list"})
		if err != nil {
			t.Fatal(err)
		}
		return mustJSON(cells[0].Value)
	}
	if got, want := groupList(), `[["default","routed","rt1",""],["g2","bridged","br9",""]]`; got != want {
		t.Errorf("group_list with empty vlans: %s, want %s", got, want)
	}
	if err := m.Update(context.Background(), func(_ store.Tx, cfg *Config) error {
		for _, g := range cfg.Groups {
			if g.Name != "g2" {
				continue
			}
			e := cfg.EditGroup(g.UUID)
			nets := map[string]Params{}
			for u, p := range e.Networks {
				nets[u] = Params{"mode": p["mode"], "link": p["link"]}
			}
			e.Networks = nets
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := groupList(), `[["default","routed","rt1",""],["g2","bridged","br9","-"]]`; got != want {
		t.Errorf("group_list without a vlan: %s, want %s", got, want)
	}
}
