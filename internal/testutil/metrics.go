package testutil

import "go.opentelemetry.io/otel/sdk/metric/metricdata"

// MetricsNamed returns the metrics of rm named name, from every scope.
func MetricsNamed(rm metricdata.ResourceMetrics, name string) []metricdata.Metrics {
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				out = append(out, m)
			}
		}
	}
	return out
}
