package service

import (
	"context"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	rapiv2 "github.com/ganeti-gateway/ganeti-gateway/gen/go/ganeti/rapi/v2"
	"github.com/ganeti-gateway/ganeti-gateway/internal/errs"
	"github.com/ganeti-gateway/ganeti-gateway/internal/legacyjson"
)

func (i *instanceService) CreateInstance(ctx context.Context, req *rapiv2.CreateInstanceRequest) (*rapiv2.JobSubmission, error) {
	body := req.GetBody()
	switch v := body.GetVersion(); v {
	case 0:
		return nil, errs.BadRequest("Instance creation request version 0 is no longer supported")
	case 1:
	default:
		return nil, errs.BadRequest("Unsupported request data version %d", v)
	}
	op := proto.Clone(opOf(body.GetOp(), func() *rapiv2.OpInstanceCreate { return &rapiv2.OpInstanceCreate{} })).(*rapiv2.OpInstanceCreate)
	op.Hvparams = convertUsbDevices(op.Hvparams)
	return i.s.submit(ctx, one("instances", req.GetReason(), op, params{"dry_run": req.GetDryRun()}))
}

// convertUsbDevices is rlib2's _ConvertUsbDevices on instance creation and
// modification: the usb_devices hypervisor parameter may separate devices
// with spaces (the command line's separator), which become commas.
func convertUsbDevices(hv *structpb.Struct) *structpb.Struct {
	v, ok := hv.GetFields()["usb_devices"]
	if !ok {
		return hv
	}
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok || !strings.Contains(s.StringValue, " ") {
		return hv
	}
	hv.Fields["usb_devices"] = structpb.NewStringValue(strings.ReplaceAll(s.StringValue, " ", ","))
	return hv
}

func (i *instanceService) MultiAllocateInstances(ctx context.Context, req *rapiv2.MultiAllocateInstancesRequest) (*rapiv2.JobSubmission, error) {
	op, err := checkMultiAlloc(req.GetOp())
	if err != nil {
		return nil, err
	}
	return i.s.submit(ctx, one("instances_multi_alloc", req.GetReason(), op, params{"dry_run": req.GetDryRun()}))
}

// instanceCreateValue checks one element of a multi-allocation's
// instances as Ganeti does (an object of OP_INSTANCE_CREATE parameters,
// with the legacy renames) and returns it with the new names.
func instanceCreateValue(v *structpb.Value) (*structpb.Value, error) {
	obj := v.GetStructValue()
	if obj == nil {
		return nil, errs.BadRequest("Body contents: Type is '%s', but 'dict' is expected", pyTypeOf(v))
	}
	fields := obj.AsMap()
	// Each element takes the legacy names an instance creation body takes.
	if err := applyRenames(fields, legacyjson.BodyRuleOf(rapiv2.InstanceService_CreateInstance_FullMethodName).Renames); err != nil {
		return nil, err
	}
	if err := legacyjson.FromValue(&rapiv2.OpInstanceCreate{}, fields); err != nil {
		return nil, codecError(err)
	}
	out, err := structpb.NewValue(fields)
	if err != nil {
		return nil, errs.BadRequest("Invalid body contents")
	}
	return out, nil
}

func pyTypeOf(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_BoolValue:
		return "bool"
	case *structpb.Value_NumberValue:
		return "float"
	case *structpb.Value_StringValue:
		return "str"
	case *structpb.Value_ListValue:
		return "list"
	case *structpb.Value_StructValue:
		return "dict"
	}
	return "NoneType"
}

// applyRenames moves renamed parameters to their new names, as Ganeti's
// FillOpcode does.
func applyRenames(body map[string]any, renames [][2]string) error {
	for _, r := range renames {
		old, nu := r[0], r[1]
		v, hasOld := body[old]
		if !hasOld {
			continue
		}
		if _, hasNew := body[nu]; hasNew {
			return errs.BadRequest("Parameter '%s' was renamed to '%s', but both are specified", old, nu)
		}
		delete(body, old)
		body[nu] = v
	}
	return nil
}

func (i *instanceService) DeleteInstance(ctx context.Context, req *rapiv2.DeleteInstanceRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceRemove { return &rapiv2.OpInstanceRemove{} })
	return i.s.submit(ctx, one("instances_name", req.GetReason(), op, params{
		"instance_name": req.GetInstanceName(), "dry_run": req.GetDryRun(), "ignore_failures": false,
	}))
}

func (i *instanceService) ActivateInstanceDisks(ctx context.Context, req *rapiv2.ActivateInstanceDisksRequest) (*rapiv2.JobSubmission, error) {
	return i.s.submit(ctx, oneDeps("instances_name_activate_disks", req.GetReason(), &rapiv2.OpInstanceActivateDisks{},
		params{"instance_name": req.GetInstanceName(), "ignore_size": req.GetIgnoreSize()}, req.GetOptions()))
}

func (i *instanceService) DeactivateInstanceDisks(ctx context.Context, req *rapiv2.DeactivateInstanceDisksRequest) (*rapiv2.JobSubmission, error) {
	return i.s.submit(ctx, oneDeps("instances_name_deactivate_disks", req.GetReason(), &rapiv2.OpInstanceDeactivateDisks{},
		params{"instance_name": req.GetInstanceName(), "force": req.GetForce()}, req.GetOptions()))
}

func (i *instanceService) GrowInstanceDisk(ctx context.Context, req *rapiv2.GrowInstanceDiskRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceGrowDisk { return &rapiv2.OpInstanceGrowDisk{} })
	return i.s.submit(ctx, one("instances_name_disk_grow", req.GetReason(), op,
		params{"instance_name": req.GetInstanceName(), "disk": req.GetDiskIndex()}))
}

func (i *instanceService) ExportInstance(ctx context.Context, req *rapiv2.ExportInstanceRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpBackupExport { return &rapiv2.OpBackupExport{} })
	return i.s.submit(ctx, one("instances_name_export", req.GetReason(), op, params{"instance_name": req.GetInstanceName()}))
}

func (i *instanceService) FailoverInstance(ctx context.Context, req *rapiv2.FailoverInstanceRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceFailover { return &rapiv2.OpInstanceFailover{} })
	return i.s.submit(ctx, one("instances_name_failover", req.GetReason(), op, params{"instance_name": req.GetInstanceName()}))
}

func (i *instanceService) GetInstanceInfo(ctx context.Context, req *rapiv2.GetInstanceInfoRequest) (*rapiv2.JobSubmission, error) {
	return i.s.submit(ctx, one("instances_name_info", req.GetReason(), &rapiv2.OpInstanceQueryData{},
		params{"instances": []any{req.GetInstanceName()}, "static": req.GetStatic()}))
}

func (i *instanceService) MigrateInstance(ctx context.Context, req *rapiv2.MigrateInstanceRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceMigrate { return &rapiv2.OpInstanceMigrate{} })
	return i.s.submit(ctx, one("instances_name_migrate", req.GetReason(), op, params{"instance_name": req.GetInstanceName()}))
}

// ModifyInstance needs a body (Ganeti fails without one with a 500; this
// is a 400).
func (i *instanceService) ModifyInstance(ctx context.Context, req *rapiv2.ModifyInstanceRequest) (*rapiv2.JobSubmission, error) {
	if req.GetOp() == nil {
		return nil, errs.BadRequest("Body contents: Type is 'NoneType', but 'dict' is expected")
	}
	op := proto.Clone(req.GetOp()).(*rapiv2.OpInstanceSetParams)
	op.Hvparams = convertUsbDevices(op.Hvparams)
	return i.s.submit(ctx, one("instances_name_modify", req.GetReason(), op, params{"instance_name": req.GetInstanceName()}))
}

func (i *instanceService) PrepareInstanceExport(ctx context.Context, req *rapiv2.PrepareInstanceExportRequest) (*rapiv2.JobSubmission, error) {
	return i.s.submit(ctx, oneDeps("instances_name_prepare_export", req.GetReason(), &rapiv2.OpBackupPrepare{},
		params{"instance_name": req.GetInstanceName(), "mode": optEnum(req.Mode)}, req.GetOptions()))
}

func (i *instanceService) RebootInstance(ctx context.Context, req *rapiv2.RebootInstanceRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceReboot { return &rapiv2.OpInstanceReboot{} })
	rebootType := optEnum(req.Type)
	if req.Type == nil {
		rebootType = "hard"
	}
	return i.s.submit(ctx, one("instances_name_reboot", req.GetReason(), op, params{
		"instance_name": req.GetInstanceName(), "reboot_type": rebootType,
		"ignore_secondaries": req.GetIgnoreSecondaries(), "dry_run": req.GetDryRun(),
	}))
}

func (i *instanceService) RecreateInstanceDisks(ctx context.Context, req *rapiv2.RecreateInstanceDisksRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceRecreateDisks { return &rapiv2.OpInstanceRecreateDisks{} })
	return i.s.submit(ctx, one("instances_name_recreate_disks", req.GetReason(), op, params{"instance_name": req.GetInstanceName()}))
}

func (i *instanceService) RenameInstance(ctx context.Context, req *rapiv2.RenameInstanceRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceRename { return &rapiv2.OpInstanceRename{} })
	return i.s.submit(ctx, one("instances_name_rename", req.GetReason(), op, params{"instance_name": req.GetInstanceName()}))
}

// ReplaceInstanceDisks takes the body, or, when it is empty, the legacy
// query arguments mode, remote_node, iallocator and disks.
func (i *instanceService) ReplaceInstanceDisks(ctx context.Context, req *rapiv2.ReplaceInstanceDisksRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceReplaceDisks { return &rapiv2.OpInstanceReplaceDisks{} })
	if proto.Size(op) == 0 && (req.Mode != nil || req.RemoteNode != nil || req.Iallocator != nil || len(req.GetDisks()) > 0) {
		legacy := map[string]any{"mode": optEnum(req.Mode)}
		if req.RemoteNode != nil {
			legacy["remote_node"] = req.GetRemoteNode()
		}
		if req.Iallocator != nil {
			legacy["iallocator"] = req.GetIallocator()
		}
		if d := req.GetDisks(); len(d) > 0 {
			disks := make([]any, len(d))
			for n, x := range d {
				disks[n] = x
			}
			legacy["disks"] = disks
		}
		fresh := &rapiv2.OpInstanceReplaceDisks{}
		if err := legacyjson.FromValue(fresh, legacy); err != nil {
			return nil, codecError(err)
		}
		op = fresh
	}
	return i.s.submit(ctx, one("instances_name_replace_disks", req.GetReason(), op, params{"instance_name": req.GetInstanceName()}))
}

func (i *instanceService) ShutdownInstance(ctx context.Context, req *rapiv2.ShutdownInstanceRequest) (*rapiv2.JobSubmission, error) {
	op := opOf(req.GetOp(), func() *rapiv2.OpInstanceShutdown { return &rapiv2.OpInstanceShutdown{} })
	return i.s.submit(ctx, one("instances_name_shutdown", req.GetReason(), op, params{
		"instance_name": req.GetInstanceName(), "dry_run": req.GetDryRun(), "no_remember": req.GetNoRemember(),
	}))
}

func (i *instanceService) StartupInstance(ctx context.Context, req *rapiv2.StartupInstanceRequest) (*rapiv2.JobSubmission, error) {
	return i.s.submit(ctx, oneDeps("instances_name_startup", req.GetReason(), &rapiv2.OpInstanceStartup{}, params{
		"instance_name": req.GetInstanceName(), "force": req.GetForce(), "dry_run": req.GetDryRun(),
		"no_remember": req.GetNoRemember(),
	}, req.GetOptions()))
}

// ReinstallInstance submits OP_INSTANCE_SHUTDOWN, OP_INSTANCE_REINSTALL
// and, unless told not to, OP_INSTANCE_STARTUP, from the body or (without
// one) the legacy query arguments os and nostartup. Unlike Ganeti 3.0.2,
// ?reason= may come with a body (the official client sends both) and goes
// into the reason trails.
func (i *instanceService) ReinstallInstance(ctx context.Context, req *rapiv2.ReinstallInstanceRequest) (*rapiv2.JobSubmission, error) {
	body := req.GetBody()
	query := req.Os != nil || req.GetNostartup()
	var osType any
	var osparams any
	start := true
	switch {
	case body != nil && proto.Size(body) > 0:
		if query {
			return nil, errs.BadRequest("Can't combine query and body parameters")
		}
		if body.Os != nil {
			osType = body.GetOs()
		}
		if body.Start != nil {
			start = body.GetStart()
		}
		if body.GetOsparams() != nil {
			osparams = body.GetOsparams().AsMap()
		}
	case query:
		if req.Os != nil {
			osType = req.GetOs()
		}
		start = !req.GetNostartup()
	}
	name := req.GetInstanceName()
	w := write{handler: "instances_name_reinstall", reason: req.GetReason(), builtOps: true, ops: []opWrite{
		{op: &rapiv2.OpInstanceShutdown{}, static: params{"instance_name": name}},
		{op: &rapiv2.OpInstanceReinstall{}, static: params{"instance_name": name, "os_type": osType, "osparams": osparams}},
	}}
	if start {
		w.ops = append(w.ops, opWrite{op: &rapiv2.OpInstanceStartup{}, static: params{"instance_name": name, "force": false}})
	}
	return i.s.submit(ctx, w)
}
