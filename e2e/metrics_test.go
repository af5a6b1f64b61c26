package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the admin listener's /metrics (admin is host:port).
func scrape(t *testing.T, admin string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return fams
}

// series returns the values of the series of family name whose labels
// include want (a label absent from a series counts as "").
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) []float64 {
	var vals []float64
	for _, m := range fams[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			vals = append(vals, m.GetGauge().GetValue())
		case m.Counter != nil:
			vals = append(vals, m.GetCounter().GetValue())
		default:
			vals = append(vals, m.GetUntyped().GetValue())
		}
	}
	return vals
}

// healthServing is the value of ganeti_gateway_health_serving for the
// overall ("") service, or -1 when there is none.
func healthServing(t *testing.T, admin string) float64 {
	t.Helper()
	v := series(scrape(t, admin), "ganeti_gateway_health_serving", map[string]string{"rpc_service": ""})
	if len(v) != 1 {
		return -1
	}
	return v[0]
}

// TestProcessMetrics scrapes a real process whose Prometheus endpoint is
// on through OTEL_METRICS_EXPORTER (not --metrics-prometheus): the Go
// runtime, process, build info and health series are there, and the
// startup log says the metrics are on.
func TestProcessMetrics(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	p := startServer(t, "", "--insecure", "--admin-listen", "127.0.0.1:0")
	admin := adminAddr(t, p)
	var logged bool
	for _, l := range strings.Split(p.Logs(), "\n") {
		var rec struct {
			Msg     string
			Metrics *bool
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "admin listener" {
			logged = rec.Metrics != nil && *rec.Metrics
		}
	}
	if !logged {
		t.Errorf("the admin listener's log line does not say metrics:true:\n%s", p.Logs())
	}
	fams := scrape(t, admin)
	positive := []struct {
		name   string
		labels map[string]string
	}{
		{"go_goroutine_count", nil},
		{"go_memory_used_bytes", map[string]string{"go_memory_type": "stack"}},
		{"go_memory_allocated_bytes_total", nil},
		{"go_processor_limit", nil},
		{"process_resident_memory_bytes", nil},
		{"process_open_fds", nil},
		{"process_max_fds", nil},
		{"process_start_time_seconds", nil},
		{"ganeti_gateway_health_serving", map[string]string{"rpc_service": ""}},
	}
	for _, s := range positive {
		if v := series(fams, s.name, s.labels); len(v) != 1 || v[0] <= 0 {
			t.Errorf("%s%v: %v, want one positive value", s.name, s.labels, v)
		}
	}
	if v := series(fams, "process_cpu_seconds_total", nil); len(v) != 1 {
		t.Errorf("process_cpu_seconds_total: %v", v)
	}
	bi := fams["ganeti_gateway_build_info"].GetMetric()
	if len(bi) != 1 || bi[0].GetGauge().GetValue() != 1 {
		t.Fatalf("ganeti_gateway_build_info: %v", bi)
	}
	labels := map[string]string{}
	for _, l := range bi[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	for _, k := range []string{"version", "commit", "go_version"} {
		if labels[k] == "" {
			t.Errorf("ganeti_gateway_build_info has no %s: %v", k, labels)
		}
	}
	if !strings.HasPrefix(labels["go_version"], "go1.") {
		t.Errorf("ganeti_gateway_build_info go_version %q", labels["go_version"])
	}
}
