package server

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"

	"github.com/ganeti-gateway/ganeti-gateway/server/errs"
)

// legacyBodyRule is what Ganeti's rlib2 checks on the keys of a write's
// JSON body before it builds the opcode: forbidden parameters, renamed
// parameters, and static parameters (set from the path, the query or the
// handler) that the body may not give.
type legacyBodyRule struct {
	static    []string
	renames   [][2]string
	forbidden []string
	// version: the body is an instance creation request (__version__).
	version bool
}

func svc(s, m string) string { return "/ganeti.rapi.v2." + s + "/" + m }

// legacyBodyRules are the rules of the writes whose body holds opcode
// parameters (resources.json static_params, renames, forbidden_params).
var legacyBodyRules = map[string]legacyBodyRule{
	svc("ClusterService", "ModifyCluster"):      {static: []string{"reason"}, forbidden: forbiddenClusterParams},
	svc("ClusterService", "RedistributeConfig"): {static: []string{"reason"}},
	svc("NodeService", "EvacuateNode"):          {static: []string{"dry_run", "node_name", "reason"}},
	svc("NodeService", "MigrateNode"):           {static: []string{"node_name", "reason"}},
	svc("NodeService", "ModifyNode"):            {static: []string{"node_name", "reason"}},
	svc("NodeService", "PowercycleNode"):        {static: []string{"force", "node_name", "reason"}},
	svc("GroupService", "CreateGroup"): {static: []string{"dry_run", "reason"},
		renames: [][2]string{{"name", "group_name"}}},
	svc("GroupService", "AssignGroupNodes"): {static: []string{"dry_run", "force", "group_name", "reason"}},
	svc("GroupService", "ModifyGroup"): {static: []string{"group_name", "reason"},
		renames: [][2]string{{"custom_diskparams", "diskparams"}, {"custom_ipolicy", "ipolicy"}, {"custom_ndparams", "ndparams"}}},
	svc("GroupService", "RenameGroup"): {static: []string{"dry_run", "group_name", "reason"}},
	svc("InstanceService", "CreateInstance"): {static: []string{"dry_run", "reason"},
		renames: instanceCreateRenames, version: true},
	svc("InstanceService", "MultiAllocateInstances"): {static: []string{"dry_run", "reason"}},
	svc("InstanceService", "DeleteInstance"):         {static: []string{"dry_run", "ignore_failures", "instance_name", "reason"}},
	svc("InstanceService", "GrowInstanceDisk"):       {static: []string{"disk", "instance_name", "reason"}},
	svc("InstanceService", "ExportInstance"): {static: []string{"instance_name", "reason"},
		renames: [][2]string{{"destination", "target_node"}}},
	svc("InstanceService", "FailoverInstance"): {static: []string{"instance_name", "reason"}},
	svc("InstanceService", "MigrateInstance"):  {static: []string{"instance_name", "reason"}},
	svc("InstanceService", "ModifyInstance"): {static: []string{"instance_name", "reason"},
		renames: [][2]string{{"custom_beparams", "beparams"}, {"custom_hvparams", "hvparams"}}},
	svc("InstanceService", "RebootInstance"):        {static: []string{"dry_run", "ignore_secondaries", "instance_name", "reason", "reboot_type"}},
	svc("InstanceService", "RecreateInstanceDisks"): {static: []string{"instance_name", "reason"}},
	svc("InstanceService", "RenameInstance"):        {static: []string{"instance_name", "reason"}},
	svc("InstanceService", "ReplaceInstanceDisks"):  {static: []string{"instance_name", "reason"}},
	svc("InstanceService", "ShutdownInstance"):      {static: []string{"dry_run", "instance_name", "no_remember", "reason"}},
	svc("NetworkService", "CreateNetwork"): {static: []string{"dry_run", "reason"},
		renames: [][2]string{{"name", "network_name"}}},
	svc("NetworkService", "DeleteNetwork"):     {static: []string{"dry_run", "network_name", "reason"}},
	svc("NetworkService", "ConnectNetwork"):    {static: []string{"dry_run", "network_name", "reason"}},
	svc("NetworkService", "DisconnectNetwork"): {static: []string{"dry_run", "network_name", "reason"}},
	svc("NetworkService", "ModifyNetwork"):     {static: []string{"network_name", "reason"}},
}

// PrepareLegacyBody applies Ganeti's checks on the keys of a legacy write
// body (fullMethod's): the instance creation version, forbidden
// parameters (in the body or the query), renamed parameters (moved to
// their new names) and static parameters. It returns the body to decode,
// or a gRPC status error with Ganeti's message. Bodies that are not JSON
// objects are returned as they are, for the codec to reject.
func PrepareLegacyBody(fullMethod string, query url.Values, body []byte) ([]byte, error) {
	rule, ok := legacyBodyRules[fullMethod]
	if !ok {
		return body, nil
	}
	for _, p := range rule.forbidden {
		if _, ok := query[p]; ok {
			return nil, ToStatus(nil, forbiddenParam(p))
		}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		if rule.version && len(trimmed) == 0 {
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
	renamed := false
	for _, r := range rule.renames {
		if _, ok := obj[r[0]]; ok {
			renamed = true
		}
	}
	if !renamed {
		return body, nil
	}
	for _, r := range rule.renames {
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

func checkLegacyKeys(rule legacyBodyRule, obj map[string]json.RawMessage) error {
	if rule.version {
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
	for _, p := range rule.forbidden {
		if _, ok := obj[p]; ok {
			return forbiddenParam(p)
		}
	}
	for _, r := range rule.renames {
		_, hasOld := obj[r[0]]
		_, hasNew := obj[r[1]]
		if hasOld && hasNew {
			return errs.BadRequest("Parameter '%s' was renamed to '%s', but both are specified", r[0], r[1])
		}
	}
	var overwritten []string
	for _, k := range rule.static {
		name := k
		for _, r := range rule.renames {
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
		return staticError(overwritten)
	}
	return nil
}
