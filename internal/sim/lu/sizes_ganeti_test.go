package lu

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/sim/cluster"
)

// TestSizesAgainstGaneti compares the ForceDictType conversions of sizes
// and integers with Ganeti's own utils.ForceDictType.
func TestSizesAgainstGaneti(t *testing.T) {
	const dir = "/usr/share/ganeti/3.0"
	if _, err := os.Stat(dir + "/ganeti/utils/text.py"); err != nil {
		msg := "Ganeti's Python modules are needed (apt-get install ganeti-3.0)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Values as the executors see them: strings, int64, float64 (the
	// non-integral numbers of a Struct), bools and null.
	inputs := []any{
		int64(0), int64(1), int64(512), int64(513), int64(-1), int64(1 << 40),
		1.5, 0.25, 1e-05, 0.0001, 1e15 + 0.5, 1e16 + 2, 1e30, -2.5, true, false, nil,
		"512", "513", "1.5", "1.5g", "2G", "1t", "10 MiB", "5 ", "5\n", " 5", "1e3", "-1", "0x10", "", ".", "1.2.3",
		"3xb", "4 gb\n", "7kb", "12 ",
	}
	script := `
import json, sys
from ganeti import constants, errors, utils
out = []
for v in json.load(sys.stdin):
    row = []
    for key in ("maxmem", "vcpus"):
        d = {key: v}
        try:
            utils.ForceDictType(d, constants.BES_PARAMETER_TYPES)
            row.append([d[key], ""])
        except errors.TypeEnforcementError as e:
            row.append([None, e.args[0]])
        except Exception as e:
            row.append([None, "%s: %s" % (type(e).__name__, e)])
    out.append(row)
json.dump(out, sys.stdout)
`
	in, _ := json.Marshal(inputs)
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONPATH="+dir)
	cmd.Stdin = strings.NewReader(string(in))
	data, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var py [][2][2]any
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	if err := dec.Decode(&py); err != nil {
		t.Fatal(err)
	}
	for i, v := range inputs {
		for k, key := range []string{"maxmem", "vcpus"} {
			want, wantErr := py[i][k][0], py[i][k][1].(string)
			got, err := forceDictType(map[string]any{key: v}, cluster.BEParamTypes())
			switch {
			case wantErr == "" && err == nil:
				if fmt.Sprint(got[key]) != fmt.Sprint(want) {
					t.Errorf("%s %#v: %v, Ganeti %v", key, v, got[key], want)
				}
			case wantErr == "" && err != nil:
				// Ganeti accepts; only integers beyond int64 and sizes
				// beyond 1 EiB may be refused.
				n, rangeErr := want.(json.Number).Int64()
				if rangeErr == nil && (key != "maxmem" || n <= 1<<40) {
					t.Errorf("%s %#v: %v, Ganeti %v", key, v, err, want)
				}
			case strings.HasPrefix(wantErr, "ValueError"):
				// Python's float() fails inside ParseUnit, uncaught by
				// ForceDictType: a bad format here.
				if err == nil || !strings.Contains(err.Error(), "Invalid format") {
					t.Errorf("%s %#v: %v, Ganeti %s", key, v, err, wantErr)
				}
			case err == nil:
				t.Errorf("%s %#v: %v, Ganeti %s", key, v, got[key], wantErr)
			default:
				if msg := err.Error(); !strings.HasSuffix(msg, wantErr) {
					t.Errorf("%s %#v: %q, Ganeti %q", key, v, msg, wantErr)
				}
			}
		}
	}
}
