package luxi

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// FuzzDecode feeds arbitrary bytes to the luxi decoder (framing, answer,
// error and query result parsing): it never panics, and every failure is
// a protocol error or a domain error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"success":true,"result":{"fields":[{"name":"name","title":"Node","kind":"text","doc":"d"}],"data":[[[0,"n1"]]]},"version":3000000}` + "\x03",
		`{"success":false,"result":["OpPrereqError",["x","unknown_entity"]]}` + "\x03",
		`{"success":false,"result":"Failed to parse request"}` + "\x03",
		`{"success":true,"result":[[7,"success",null]]}` + "\x03",
		"\x03", `{"success":true`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for {
			msg, err := readMessage(r, 1<<10)
			if err != nil {
				return
			}
			res, err := decodeResponse(msg)
			if err != nil {
				var pe *ProtocolError
				if _, ok := errs.As(err); !ok && !errors.As(err, &pe) {
					t.Fatalf("error %T %v", err, err)
				}
				continue
			}
			decodeQueryResult(res)
			decodeJob(res)
		}
	})
}
