package jobs

import (
	"testing"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
)

func TestOsDiagnose(t *testing.T) {
	v := newEnv(t, 0, nil)
	v.e.Start()
	cases := []struct {
		op     *rapiv2.OpOsDiagnose
		status string
		result string
	}{
		// What GET /2/os submits in Ganeti (capture seq 231, job 3).
		{&rapiv2.OpOsDiagnose{OutputFields: []string{"name", "variants"}}, "success", `[["noop",[]]]`},
		{&rapiv2.OpOsDiagnose{OutputFields: []string{"name", "valid", "hidden", "blacklisted", "api_versions"}}, "success", `[["noop",true,false,false,[20]]]`},
		{&rapiv2.OpOsDiagnose{OutputFields: []string{"name"}, Names: []string{"other"}}, "success", `[]`},
		{&rapiv2.OpOsDiagnose{OutputFields: []string{"name", "bogus"}}, "error", `["OpPrereqError",["Unknown output fields selected: bogus","wrong_input"]]`},
	}
	for _, c := range cases {
		stWantResult(t, stRun(t, v, c.op), c.status, c.result)
	}
}
