package gateway

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

// PrepareLegacyBody applies Ganeti's checks on the keys of a legacy write
// body (fullMethod's): the instance creation version, forbidden
// parameters (in the body or the query), renamed parameters (moved to
// their new names), static parameters, and the keys whose null means the
// default (left out). It returns the body to decode,
// or a gRPC status error with Ganeti's message. Bodies that are not JSON
// objects are returned as they are, for the codec to reject.
func PrepareLegacyBody(fullMethod string, query url.Values, body []byte) ([]byte, error) {
	rule, ok := legacyjson.BodyRules()[fullMethod]
	if !ok {
		return body, nil
	}
	for _, p := range rule.Forbidden {
		if _, ok := query[p]; ok {
			return nil, ToStatus(nil, errs.ForbiddenParam(p))
		}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if rule.Versioned && len(trimmed) == 0 {
			return nil, ToStatus(nil, errs.BadRequest("Instance creation request version 0 is no longer supported"))
		}
		return body, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &obj); err != nil || obj == nil {
		return body, nil
	}
	if err := checkLegacyKeys(rule, obj); err != nil {
		return nil, ToStatus(nil, err)
	}
	changed := false
	for _, r := range rule.Renames {
		if _, ok := obj[r[0]]; ok {
			changed = true
		}
	}
	for _, k := range rule.NullDefault {
		if v, ok := obj[k]; ok && string(bytes.TrimSpace(v)) == "null" {
			delete(obj, k)
			changed = true
		}
	}
	if !changed {
		return body, nil
	}
	for _, r := range rule.Renames {
		if v, ok := obj[r[0]]; ok {
			delete(obj, r[0])
			obj[r[1]] = v
		}
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return body, nil
	}
	return out, nil
}

func checkLegacyKeys(rule legacyjson.BodyRule, obj map[string]json.RawMessage) error {
	if rule.Versioned {
		raw, ok := obj["__version__"]
		v := strings.TrimSpace(string(raw))
		switch {
		case !ok || v == "0" || v == "false" || v == "null":
			return errs.BadRequest("Instance creation request version 0 is no longer supported")
		case v != "1" && v != "true":
			var str string
			if json.Unmarshal(raw, &str) == nil {
				v = str
			}
			return errs.BadRequest("Unsupported request data version %s", v)
		}
	}
	for _, p := range rule.Forbidden {
		if _, ok := obj[p]; ok {
			return errs.ForbiddenParam(p)
		}
	}
	for _, r := range rule.Renames {
		_, hasOld := obj[r[0]]
		_, hasNew := obj[r[1]]
		if hasOld && hasNew {
			return errs.BadRequest("Parameter '%s' was renamed to '%s', but both are specified", r[0], r[1])
		}
	}
	var overwritten []string
	for _, k := range rule.Static {
		name := k
		for _, r := range rule.Renames {
			if r[1] == k {
				if _, ok := obj[r[0]]; ok {
					overwritten = append(overwritten, k)
				}
			}
		}
		if _, ok := obj[name]; ok {
			overwritten = append(overwritten, k)
		}
	}
	if len(overwritten) > 0 {
		return errs.StaticParams(overwritten)
	}
	return nil
}
