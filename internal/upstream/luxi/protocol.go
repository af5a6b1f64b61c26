// Package luxi is the LUXI upstream backend: backend.Backend over Ganeti's
// luxi protocol, the unix socket that Ganeti's own RAPI daemon and command
// line tools use to reach luxid on the master node
// (/var/run/ganeti/socket/ganeti-query).
//
// The protocol (Ganeti's lib/rpc/client.py and src/Ganeti/Luxi.hs): a
// request is the JSON object {"method", "args", "version"} followed by the
// byte 0x03, an answer is {"success", "result", "version"} followed by 0x03.
// A failed call's result is [error class, [arguments]] (e.g. ["OpPrereqError",
// ["Instance name x not found", "unknown_entity"]]) or a message string.
// luxid answers one request at a time per connection, so the client keeps
// a pool of connections.
package luxi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
)

// eom ends every luxi message.
const eom = 0x03

// ProtocolVersion is luxid's protocol version for Ganeti 3.0
// (constants.json PROTOCOL_VERSION): luxid refuses a request carrying
// another one.
const ProtocolVersion = 3000000

// Luxi method names (src/Ganeti/Luxi.hs).
const (
	MethodSubmitJob         = "SubmitJob"
	MethodSubmitManyJobs    = "SubmitManyJobs"
	MethodQuery             = "Query"
	MethodQueryFields       = "QueryFields"
	MethodQueryJobs         = "QueryJobs"
	MethodWaitForJobChange  = "WaitForJobChange"
	MethodCancelJob         = "CancelJob"
	MethodChangeJobPriority = "ChangeJobPriority"
	MethodReplaceFilter     = "ReplaceFilter"
	MethodDeleteFilter      = "DeleteFilter"
	MethodQueryClusterInfo  = "QueryClusterInfo"
	MethodQueryTags         = "QueryTags"
)

type request struct {
	Method  string `json:"method"`
	Args    any    `json:"args"`
	Version int    `json:"version"`
}

// encodeRequest is the framed request of method with args (a JSON array).
func encodeRequest(method string, args []any) ([]byte, error) {
	if args == nil {
		args = []any{}
	}
	b, err := json.Marshal(request{Method: method, Args: args, Version: ProtocolVersion})
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(b, eom) >= 0 { // json.Marshal escapes control bytes: cannot happen
		return nil, errors.New("luxi: request contains the end-of-message byte")
	}
	return append(b, eom), nil
}

// ProtocolError is an answer that is not a luxi answer (bad JSON, missing
// keys, wrong version): the connection is not reusable.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "luxi protocol error: " + e.Msg }

type response struct {
	Success *bool           `json:"success"`
	Result  json.RawMessage `json:"result"`
	Version *int64          `json:"version"`
}

// decodeResponse parses one answer (without its 0x03): the result of a
// successful call, or the error of a failed one (a *errs.Error built from
// Ganeti's error, see remoteError), or a *ProtocolError.
func decodeResponse(msg []byte) (json.RawMessage, error) {
	var r response
	if err := json.Unmarshal(msg, &r); err != nil {
		return nil, &ProtocolError{Msg: "answer is not a JSON object"}
	}
	if r.Success == nil || r.Result == nil {
		return nil, &ProtocolError{Msg: "answer lacks success or result"}
	}
	if r.Version != nil && *r.Version != ProtocolVersion {
		return nil, &ProtocolError{Msg: fmt.Sprintf("luxid speaks protocol version %d, not %d", *r.Version, ProtocolVersion)}
	}
	if !*r.Success {
		return nil, remoteError(r.Result)
	}
	return r.Result, nil
}

// RemoteError is an error luxid answered with, as Ganeti encodes it.
type RemoteError struct {
	Class string // Ganeti's error class, e.g. OpPrereqError ("" for a bare message)
	Args  []any  // its arguments
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("luxi: %s %v", e.Class, e.Args)
}

// remoteError turns a failed call's result into the domain error the
// services show: OpPrereqError keeps its message and classification, the
// other classes of a request's fault (parse and parameter errors) become a
// bad request, and the rest luxid's own failures. The *RemoteError is
// wrapped so that callers can look at Ganeti's class.
func remoteError(result json.RawMessage) error {
	re := &RemoteError{}
	var pair []json.RawMessage
	if err := json.Unmarshal(result, &pair); err == nil && len(pair) == 2 {
		if json.Unmarshal(pair[0], &re.Class) == nil {
			var args []any
			if json.Unmarshal(pair[1], &args) == nil {
				re.Args = args
			} else {
				var one any
				_ = json.Unmarshal(pair[1], &one)
				re.Args = []any{one}
			}
		}
	}
	if re.Class == "" {
		var s string
		if json.Unmarshal(result, &s) != nil {
			s = string(result)
		}
		re.Class, re.Args = "", []any{s}
	}
	return &domainError{remote: re, err: domainOf(re)}
}

// domainError is a luxi failure: Is/As find both the domain error and the
// remote one.
type domainError struct {
	remote *RemoteError
	err    *errs.Error
}

func (e *domainError) Error() string { return e.err.Error() }

func (e *domainError) Unwrap() []error { return []error{e.err, e.remote} }

func (re *RemoteError) message() string {
	if len(re.Args) > 0 {
		if s, ok := re.Args[0].(string); ok {
			return s
		}
	}
	b, _ := json.Marshal(re.Args)
	return string(b)
}

func (re *RemoteError) code() errs.Code {
	if len(re.Args) > 1 {
		if s, ok := re.Args[1].(string); ok {
			for _, c := range errs.Codes {
				if string(c) == s {
					return c
				}
			}
		}
	}
	return errs.CodeNone
}

func domainOf(re *RemoteError) *errs.Error {
	msg := re.message()
	switch re.Class {
	case errs.ClassPrereq:
		return errs.Prereq(re.code(), "%s", msg)
	case errs.ClassExec:
		return errs.Exec("%s", msg)
	case errs.ClassHypervisor:
		return errs.Hypervisor("%s", msg)
	case errs.ClassQuery, "ParameterError":
		return errs.QueryFilter("%s", msg)
	case "":
		// luxid could not parse the request: Ganeti's RAPI answers 502.
		return &errs.Error{Class: "LuxiError", Code: errs.CodeInval, Msg: msg}
	}
	return &errs.Error{Class: re.Class, Code: re.code(), Msg: msg}
}
