// Package clusters is several Ganeti clusters behind one gateway: the
// clusters file (--clusters) and the backend that routes each call to the
// cluster its context names (backend.WithCluster), so that the services
// stay unaware of the clusters.
package clusters

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// Sim is the upstream of the embedded simulated cluster.
const Sim = "sim"

// File is a clusters file: YAML (or JSON, which is YAML).
type File struct {
	Clusters []Entry `json:"clusters"`
}

// Entry is one cluster of the file.
type Entry struct {
	// Name names the cluster: the gRPC metadata ganeti-cluster, the
	// ganeti.cluster attribute, the cluster/<name> health service.
	Name string `json:"name"`
	// Upstream is "sim" (the embedded simulated cluster), the cluster's
	// RAPI base URLs (https://host:5080, one per master candidate) or one
	// unix:///path of luxid's socket.
	Upstream Strings `json:"upstream"`
	// CA verifies the upstream's certificate (RAPI); Insecure skips it.
	CA       string `json:"ca,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
	// User and PasswordFile are the service user's credentials (RAPI).
	User         string `json:"user,omitempty"`
	PasswordFile string `json:"password_file,omitempty"`
	// Hosts are the host names legacy clients reach the cluster by (the
	// Host header or the TLS server name); the name is one too.
	Hosts []string `json:"hosts,omitempty"`
	// Default serves the requests that name no cluster.
	Default bool `json:"default,omitempty"`
}

// IsSim reports whether the entry is the simulated cluster.
func (e *Entry) IsSim() bool { return len(e.Upstream) == 1 && e.Upstream[0] == Sim }

// Strings is a list of strings that may be written as one string.
type Strings []string

// UnmarshalJSON accepts a string or a list of strings.
func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*s = list
	return nil
}

// Load reads and validates a clusters file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--clusters: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("--clusters %s: %w", path, err)
	}
	return f, nil
}

// nameRE is a cluster name: a lower-case DNS label or name.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// Parse parses and validates a clusters file: unknown keys, duplicate
// names or host names, several defaults, several simulated clusters and
// credentials a transport does not take are errors.
func Parse(data []byte) (*File, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("not a clusters file: %w", err)
	}
	if len(f.Clusters) == 0 {
		return nil, errors.New("no clusters: want a list of clusters under \"clusters\"")
	}
	seen := map[string]string{} // name or host -> cluster
	names := map[string]bool{}
	defaults, sims := 0, 0
	for i := range f.Clusters {
		e := &f.Clusters[i]
		where := fmt.Sprintf("cluster %d", i+1)
		if e.Name != "" {
			where = fmt.Sprintf("cluster %q", e.Name)
		}
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if _, dup := names[e.Name]; dup {
			return nil, fmt.Errorf("%s: a second cluster of that name", where)
		}
		names[e.Name] = true
		if e.IsSim() {
			sims++
		}
		if e.Default {
			defaults++
		}
		for _, h := range append([]string{e.Name}, e.Hosts...) {
			if other, ok := seen[h]; ok {
				if other == e.Name {
					return nil, fmt.Errorf("%s: host name %q listed twice", where, h)
				}
				return nil, fmt.Errorf("%s: name or host name %q is already cluster %q's", where, h, other)
			}
			seen[h] = e.Name
		}
	}
	if sims > 1 {
		return nil, errors.New("at most one cluster can be the simulated one (upstream: sim)")
	}
	if defaults > 1 {
		return nil, errors.New("at most one cluster can be the default")
	}
	return &f, nil
}

// check validates one entry and normalises its host names (lower case,
// no trailing dot).
func (e *Entry) check() error {
	if e.Name == "" {
		return errors.New("no name")
	}
	if !nameRE.MatchString(e.Name) {
		return fmt.Errorf("name %q: want a lower-case DNS name (letters, digits, '-' and '.')", e.Name)
	}
	if len(e.Upstream) == 0 {
		return errors.New("no upstream: want \"sim\", https:// URLs or one unix:// socket")
	}
	for i, h := range e.Hosts {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if !nameRE.MatchString(h) {
			return fmt.Errorf("host name %q: want a DNS name without a port", e.Hosts[i])
		}
		e.Hosts[i] = h
	}
	if (e.User == "") != (e.PasswordFile == "") {
		return errors.New("user and password_file go together")
	}
	if e.IsSim() {
		if e.CA != "" || e.Insecure || e.User != "" {
			return errors.New("the simulated cluster takes no ca, insecure, user or password_file")
		}
		return nil
	}
	luxi := false
	for _, a := range e.Upstream {
		if a == Sim {
			return errors.New("upstream sim is the only upstream of its cluster")
		}
		u, err := url.Parse(a)
		if err != nil {
			return fmt.Errorf("upstream %q is not a URL", a)
		}
		if u.User != nil {
			return fmt.Errorf("upstream %q: credentials go in user and password_file, never in the URL", u.Redacted())
		}
		switch u.Scheme {
		case "https", "http":
			if u.Host == "" {
				return fmt.Errorf("upstream %q: no host", a)
			}
		case "unix":
			if len(e.Upstream) != 1 {
				return fmt.Errorf("upstream %q: a luxi socket is the only upstream of its cluster", a)
			}
			if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
				return fmt.Errorf("upstream %q: want unix:///absolute/path/to/socket", a)
			}
			luxi = true
		default:
			return fmt.Errorf("upstream %q: unsupported scheme (https:// for RAPI, unix:// for luxi, or sim)", a)
		}
	}
	if luxi && (e.CA != "" || e.Insecure || e.User != "") {
		return errors.New("a luxi upstream takes no ca, insecure, user or password_file")
	}
	if e.CA != "" && e.Insecure {
		return errors.New("ca and insecure exclude each other")
	}
	for _, p := range []struct{ key, path string }{{"ca", e.CA}, {"password_file", e.PasswordFile}} {
		if p.path == "" {
			continue
		}
		st, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s %s: not a regular file", p.key, p.path)
		}
	}
	return nil
}

// Default is the name of the default cluster ("" when none).
func (f *File) Default() string {
	for _, e := range f.Clusters {
		if e.Default {
			return e.Name
		}
	}
	return ""
}
