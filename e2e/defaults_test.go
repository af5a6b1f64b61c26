package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestDefaultsAnswerLikeGaneti starts the binary with its defaults (TLS with
// a self-signed certificate, the embedded demo cluster) and checks that each
// read answers with the structure of the matching golden capture: the same
// keys and JSON types, recursively.
func TestDefaultsAnswerLikeGaneti(t *testing.T) {
	p := startServer(t, "")
	pem, err := os.ReadFile(filepath.Join(p.DataDir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad certificate")
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	_, port, _ := strings.Cut(p.Addr, ":")
	base := "https://" + e2eUser + ":" + e2ePassword + "@localhost:" + port

	golden := map[int]capture{}
	for _, c := range loadCaptures(t) {
		golden[c.Seq] = c
	}
	cases := []struct {
		path string
		seq  int // the capture whose structure the answer must have
	}{
		{"/version", 3},
		{"/2/info", 4},
		{"/2/features", 5},
		{"/2/os", 6},
		{"/2/nodes?bulk=1", 8},
		{"/2/groups?bulk=1", 13},
		{"/2/instances?bulk=1", 87},
		{"/2/networks?bulk=1", 199},
		{"/2/filters", 21},
		{"/2/jobs", 22},
		{"/2/tags", 50},
		{"/2/nodes/node1.example.com/role", 10},
		{"/2/query/node?fields=name,mtotal", 32},
		{"/2/query/instance/fields", 23},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			resp, err := client.Get(base + c.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var got, want any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("not JSON: %s", body)
			}
			if err := json.Unmarshal([]byte(golden[c.seq].ResponseBody), &want); err != nil {
				t.Fatal(err)
			}
			if err := sameShape(want, got, "$"); err != nil {
				t.Errorf("%s: %v\nours: %.400s", c.path, err, body)
			}
		})
	}
}

// sameShape compares JSON structure: object keys and value types. A null
// matches any type (Ganeti's "no value"); list element i is compared with
// captured element i, or the last captured one (lists of records, and
// tuples such as query cells [status, value]).
func sameShape(want, got any, path string) error {
	if want == nil || got == nil {
		return nil
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, captured an object", path, got)
		}
		if p := strings.TrimRight(path, "[]0123456789"); strings.HasSuffix(p, "params") || strings.HasSuffix(p, "ipolicy") {
			return nil // free-form parameter dicts: their keys depend on the cluster
		}
		var wk, gk []string
		for k := range w {
			wk = append(wk, k)
		}
		for k := range g {
			gk = append(gk, k)
		}
		sort.Strings(wk)
		sort.Strings(gk)
		if strings.Join(wk, ",") != strings.Join(gk, ",") {
			return fmt.Errorf("%s: keys %v, captured %v", path, gk, wk)
		}
		for k := range w {
			if err := sameShape(w[k], g[k], path+"."+k); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, captured a list", path, got)
		}
		if len(w) == 0 {
			return nil
		}
		for i, e := range g {
			if err := sameShape(w[min(i, len(w)-1)], e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	default:
		if fmt.Sprintf("%T", want) != fmt.Sprintf("%T", got) {
			return fmt.Errorf("%s: %T %v, captured %T %v", path, got, got, want, want)
		}
	}
	return nil
}
