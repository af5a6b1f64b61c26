package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// decodeJSON decodes data into v keeping numbers exact (json.Number); the
// JSON-like values inside v must then go through normalizeJSON.
func decodeJSON(data []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// normalizeJSON turns the json.Number values of a decoded JSON tree into
// int64 (integral values that fit) or float64, so that every value handed
// out has one of the documented Go types.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return string(x)
		}
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeJSON(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeJSON(e)
		}
		return x
	default:
		return v
	}
}

// asInt converts a JSON number to int64; ok is false for non-integral or
// out-of-range values and for non-numbers.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		if x != math.Trunc(x) || x < -9.2e18 || x > 9.2e18 {
			return 0, false
		}
		return int64(x), true
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		if err == nil {
			return i, true
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return 0, false
		}
		return asInt(f)
	}
	return 0, false
}

// asFloat converts a JSON number to float64.
func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// typeName describes a JSON-like value for error messages.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case int64, int, float64, json.Number:
		return "a number"
	case []any, []string:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// checkParam converts v to the type of the default value def (the type of
// parameter key): bool, int64, float64 or string, maybe null.
func checkParam(key string, def, v any) (any, error) {
	if v == nil && maybeStringParams[key] {
		return nil, nil
	}
	switch def.(type) {
	case bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%q must be a boolean, not %s", key, typeName(v))
	case int64:
		if i, ok := asInt(v); ok {
			return i, nil
		}
		return nil, fmt.Errorf("%q must be an integer, not %s", key, typeName(v))
	case float64:
		if f, ok := asFloat(v); ok {
			return f, nil
		}
		return nil, fmt.Errorf("%q must be a number, not %s", key, typeName(v))
	case string, nil:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%q must be a string, not %s", key, typeName(v))
	}
	return nil, fmt.Errorf("%q: unsupported parameter type %T", key, def)
}

// checkParams validates a (custom) parameter dictionary against the known
// parameters defs and returns a normalized copy.
func checkParams(p Params, defs Params) (Params, error) {
	out := make(Params, len(p))
	for _, k := range sortedKeys(p) {
		def, known := defs[k]
		if !known {
			return nil, fmt.Errorf("unknown parameter %q", k)
		}
		v, err := checkParam(k, def, p[k])
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// fillParams returns defaults overlaid with custom, as a new map.
func fillParams(defaults, custom Params) Params {
	out := make(Params, len(defaults)+len(custom))
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range custom {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Instance policy ------------------------------------------------------------

var ispecParams = []string{"cpu-count", "disk-count", "disk-size", "memory-size", "nic-count", "spindle-use"}

// checkIspec validates an instance spec; full requires every parameter.
func checkIspec(what string, v any, full bool) (Params, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s must be an object, not %s", what, typeName(v))
	}
	out := Params{}
	for _, k := range sortedKeys(m) {
		if !contains(ispecParams, k) {
			return nil, fmt.Errorf("%s: unknown parameter %q", what, k)
		}
		i, ok := asInt(m[k])
		if !ok || i < 0 {
			return nil, fmt.Errorf("%s: %q must be a non-negative integer", what, k)
		}
		out[k] = i
	}
	if full {
		for _, k := range ispecParams {
			if _, ok := out[k]; !ok {
				return nil, fmt.Errorf("%s: missing parameter %q", what, k)
			}
		}
	}
	return out, nil
}

// checkIPolicy validates a (partial) instance policy and returns a
// normalized copy. Keys: minmax (list of {min, max} full specs), std
// (partial spec), spindle-ratio and vcpu-ratio (numbers), disk-templates.
func checkIPolicy(p Params) (Params, error) {
	out := Params{}
	for _, k := range sortedKeys(p) {
		v := p[k]
		switch k {
		case "minmax":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return nil, fmt.Errorf("ipolicy minmax must be a non-empty list")
			}
			mm := make([]any, 0, len(list))
			for i, e := range list {
				pair, ok := e.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("ipolicy minmax[%d] must be an object with min and max", i)
				}
				for key := range pair {
					if key != "min" && key != "max" {
						return nil, fmt.Errorf("ipolicy minmax[%d]: unknown key %q", i, key)
					}
				}
				lo, err := checkIspec(fmt.Sprintf("ipolicy minmax[%d].min", i), pair["min"], true)
				if err != nil {
					return nil, err
				}
				hi, err := checkIspec(fmt.Sprintf("ipolicy minmax[%d].max", i), pair["max"], true)
				if err != nil {
					return nil, err
				}
				for _, sp := range ispecParams {
					if lo[sp].(int64) > hi[sp].(int64) {
						return nil, fmt.Errorf("ipolicy minmax[%d]: min %s is above max", i, sp)
					}
				}
				mm = append(mm, Params{"min": lo, "max": hi})
			}
			out[k] = mm
		case "std":
			std, err := checkIspec("ipolicy std", v, false)
			if err != nil {
				return nil, err
			}
			out[k] = std
		case "spindle-ratio", "vcpu-ratio":
			f, ok := asFloat(v)
			if !ok || f < 0 {
				return nil, fmt.Errorf("ipolicy %s must be a non-negative number", k)
			}
			out[k] = f
		case "disk-templates":
			dts, err := stringList("ipolicy disk-templates", v)
			if err != nil {
				return nil, err
			}
			for _, dt := range dts {
				if !contains(DiskTemplates, dt) {
					return nil, fmt.Errorf("ipolicy disk-templates: unknown disk template %q", dt)
				}
			}
			out[k] = dts
		default:
			return nil, fmt.Errorf("ipolicy: unknown key %q", k)
		}
	}
	return out, nil
}

// checkIPolicyStd checks that the standard spec of a complete policy lies
// within the first min/max pair, as Ganeti requires.
func checkIPolicyStd(p Params) error {
	mm, _ := p["minmax"].([]any)
	std, _ := p["std"].(map[string]any)
	if len(mm) == 0 || std == nil {
		return nil
	}
	first, _ := mm[0].(map[string]any)
	lo, _ := first["min"].(map[string]any)
	hi, _ := first["max"].(map[string]any)
	for _, k := range ispecParams {
		v, ok := asInt(std[k])
		if !ok {
			return fmt.Errorf("ipolicy std: missing parameter %q", k)
		}
		l, _ := asInt(lo[k])
		h, _ := asInt(hi[k])
		if v < l || v > h {
			return fmt.Errorf("ipolicy std: %s %d is not between the minimum %d and the maximum %d", k, v, l, h)
		}
	}
	return nil
}

// fillIPolicy overlays custom over base: minmax, ratios and disk-templates
// replace, std is merged key by key.
func fillIPolicy(base, custom Params) Params {
	out, _ := deepCopy(base).(map[string]any)
	if out == nil {
		out = Params{}
	}
	for k, v := range custom {
		if k == "std" {
			std, _ := out["std"].(map[string]any)
			c, _ := v.(map[string]any)
			out["std"] = fillParams(std, c)
			continue
		}
		out[k] = deepCopy(v)
	}
	return out
}

// stringList converts a JSON list of strings.
func stringList(what string, v any) ([]string, error) {
	switch x := v.(type) {
	case []string:
		return cloneStrings(x), nil
	case []any:
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s[%d] must be a string, not %s", what, i, typeName(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s must be a list of strings, not %s", what, typeName(v))
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// normalizeParams restores the Go types of a parameter dictionary read back
// from the store (JSON numbers become int64 or float64 as defs says).
func normalizeParams(p Params, defs Params) Params {
	if p == nil {
		return Params{}
	}
	for k, v := range p {
		v = normalizeJSON(v)
		if def, ok := defs[k]; ok {
			if nv, err := checkParam(k, def, v); err == nil {
				v = nv
			}
		}
		p[k] = v
	}
	return p
}

// normalizeIPolicy restores the Go types of a stored instance policy.
func normalizeIPolicy(p Params) Params {
	if p == nil {
		return Params{}
	}
	p, _ = normalizeJSON(p).(map[string]any)
	if out, err := checkIPolicy(p); err == nil {
		return out
	}
	return p
}
