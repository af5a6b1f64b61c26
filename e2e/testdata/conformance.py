"""Conformance suite: drive every public method of Ganeti's official RAPI
client (GanetiRapiClient of Debian's python3-ganeti-rapi) against a
ganeti-gateway, and check each call by its effect, read back with a second
call: the state changed as the call said, and the job result is what the
client expects. A job id coming back is never enough.

Run by e2e/pyclient_test.go (TestOfficialClientConformance) with Debian's
/usr/bin/python3, against a server process on testdata/conformance-cluster.json
(two node groups of three nodes, drbd, plain, file and diskless instances,
two networks, two OSes). Environment:

  RAPI_HOST, RAPI_PORT  the server (TLS, verified against RAPI_CAFILE)
  RAPI_USER, RAPI_PASSWORD  a user with the "read" and "write" options
  CLUSTER_FILE  the cluster file the server was seeded from: the read
                checks compare the answers with what it declares
  BLOCKER_JOB   the id of a running OP_TEST_DELAY job that holds the node
                lock of node3.example.com for a few seconds (the RAPI has no
                route for OP_TEST_DELAY: the Go test submits it over gRPC);
                CancelJob and WaitForJobChange use it

Output: one line per check, "ok   <what> [<client methods called>]" or
"FAIL <what> [...]" with the reason; then the coverage of the client's
public methods (found by introspecting GanetiRapiClient; a method counts
as covered when a passing check called it); the last line is
"N passed, N failed". The exit status is non-zero on any failure, and a
public method that no passing check called is a failure.

`conformance.py --list-methods` prints the introspected public methods,
one a line, and exits.

The checks run in a fixed order on one cluster: later checks use objects
earlier ones made (a check whose prerequisite failed fails too).

The two mismatches between the stock client and the stock 3.0.2 server
(../shared/spec/client_calls.md) are checked as this server decided them
(README, Compatibility): CreateNetwork without tags creates a network
without tags (3.0.2: 400), and ReinstallInstance with a reason is accepted
and the reason is in every opcode's reason trail (3.0.2: 400).
"""
import inspect
import json
import os
import sys
import time
import traceback

try:
    from ganeti.rapi import client
except ImportError as err:
    print("Debian's python3-ganeti-rapi and python3-pycurl are needed "
          "(apt-get install python3-ganeti-rapi python3-pycurl): %s" % err)
    sys.exit(2)


def client_methods():
    """The public methods of GanetiRapiClient (inherited ones included)."""
    return sorted(name for name, member in inspect.getmembers(client.GanetiRapiClient)
                  if not name.startswith("_") and (inspect.isfunction(member) or inspect.ismethod(member)))


if sys.argv[1:] == ["--list-methods"]:
    print("\n".join(client_methods()))
    sys.exit(0)


class Recorder(object):
    """Wraps a GanetiRapiClient and records which of its public methods the
    script calls (calls the client makes to itself are not recorded)."""

    def __init__(self, real):
        self._real = real
        self.called = []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args, **kwargs):
            if name not in self.called:
                self.called.append(name)
            return attr(*args, **kwargs)
        call.__name__ = name
        return call


rapi = Recorder(client.GanetiRapiClient(
    os.environ["RAPI_HOST"], port=int(os.environ["RAPI_PORT"]),
    username=os.environ["RAPI_USER"], password=os.environ["RAPI_PASSWORD"],
    curl_config_fn=client.GenericCurlConfig(cafile=os.environ["RAPI_CAFILE"])))

with open(os.environ["CLUSTER_FILE"]) as f:
    FILE = json.load(f)

BLOCKER = os.environ.get("BLOCKER_JOB")
DOMAIN = ".example.com"
MASTER = FILE["cluster"]["master_node"]
NODE1, NODE2, NODE3, NODE4, NODE5, NODE6 = ["node%d%s" % (i, DOMAIN) for i in range(1, 7)]
ALPHA = [NODE1, NODE2, NODE3]
BETA = [NODE4, NODE5, NODE6]
NODES = ALPHA + BETA
WEB1, DB1, APP1, BUILD1, TEST1 = [n + DOMAIN for n in ("web1", "db1", "app1", "build1", "test1")]

N_FIELDS = ["name", "offline", "master_candidate", "drained", "dtotal", "dfree", "sptotal", "spfree",
            "mtotal", "mnode", "mfree", "pinst_cnt", "sinst_cnt", "ctotal", "cnos", "cnodes",
            "csockets", "pip", "sip", "role", "pinst_list", "sinst_list", "master_capable",
            "vm_capable", "ndparams", "group.uuid", "ctime", "mtime", "uuid", "serial_no", "tags"]
I_FIELDS = ["name", "admin_state", "os", "pnode", "snodes", "disk_template", "nic.ips", "nic.macs",
            "nic.modes", "nic.uuids", "nic.names", "nic.links", "nic.networks", "nic.networks.names",
            "nic.bridges", "network_port", "disk.sizes", "disk.spindles", "disk_usage", "disk.uuids",
            "disk.names", "beparams", "hvparams", "oper_state", "oper_ram", "oper_vcpus", "status",
            "custom_hvparams", "custom_beparams", "custom_nicparams", "ctime", "mtime", "uuid",
            "serial_no", "tags"]
J_FIELDS = ["id", "ops", "status", "summary", "opstatus", "opresult", "oplog",
            "received_ts", "start_ts", "end_ts"]

passed = failed = 0
covered = set()


def check(what, fn):
    """Runs one check and records the client methods it called."""
    global passed, failed
    rapi.called = []
    try:
        fn()
    except client.GanetiApiError as err:
        failed += 1
        print("FAIL %s [%s]\n     HTTP %s: %s" % (what, ", ".join(rapi.called), err.code, err))
    except Exception:  # pylint: disable=broad-except
        failed += 1
        print("FAIL %s [%s]\n%s" % (what, ", ".join(rapi.called), traceback.format_exc()))
    else:
        passed += 1
        covered.update(rapi.called)
        print("ok   %s [%s]" % (what, ", ".join(rapi.called)))
    sys.stdout.flush()


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def job(job_id, want="success"):
    """Waits for a job with WaitForJobCompletion (which answers whether it
    succeeded), then reads it with GetJobStatus and checks its status."""
    done = rapi.WaitForJobCompletion(job_id, period=0.05, retries=1200)
    st = rapi.GetJobStatus(job_id)
    if st["status"] != want:
        raise AssertionError("job %s: status %r, want %r; opresult %r; oplog %r"
                             % (job_id, st["status"], want, st["opresult"], st["oplog"]))
    eq(done, want == "success", "WaitForJobCompletion of job %s" % job_id)
    return st


def job_error(job_id, message_part):
    """Waits for a job that must fail; checks its error's message."""
    st = job(job_id, "error")
    err = st["opresult"][-1]
    if not (isinstance(err, list) and len(err) == 2 and err[0].endswith("Error")
            and message_part in str(err[1][0])):
        raise AssertionError("job %s: error %r, want one containing %r" % (job_id, err, message_part))
    return st


def wait_status(job_id, statuses, timeout=10):
    """Polls GetJobStatus until the job's status is one of statuses."""
    deadline = time.time() + timeout
    while True:
        st = rapi.GetJobStatus(job_id)
        if st["status"] in statuses:
            return st
        if time.time() > deadline:
            raise AssertionError("job %s: status %r, want one of %r" % (job_id, st["status"], statuses))
        time.sleep(0.05)


def api_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except client.GanetiApiError as err:
        eq(err.code, code, "%s: HTTP status" % fn.__name__)
        return err
    raise AssertionError("%s%r: no error, want HTTP %d" % (fn.__name__, args, code))


def not_found(fn, *args):
    return api_error(404, fn, *args)


def inst(name):
    return rapi.GetInstance(name)


def node(name):
    return rapi.GetNode(name)


def iquery(name, fields):
    """One instance's fields through Query (fields GetInstance lacks)."""
    res = rapi.Query("instance", fields, qfilter=["=", "name", name])
    eq(len(res["data"]), 1, "query rows for %s" % name)
    row = res["data"][0]
    for status, _ in row:
        eq(status, 0, "query status")
    return dict(zip(fields, [v for _, v in row]))


def nquery(name, fields):
    res = rapi.Query("node", fields, qfilter=["=", "name", name])
    eq(len(res["data"]), 1, "query rows for %s" % name)
    return dict(zip(fields, [v for _, v in res["data"][0]]))


def file_names(kind):
    return [o["name"] for o in FILE.get(kind, [])]


def file_obj(kind, name):
    for o in FILE.get(kind, []):
        if o["name"] == name:
            return o
    raise KeyError(name)


def file_instance_up(i):
    return i.get("admin_state", "up") == "up"


def group_of(node_name):
    return file_obj("nodes", node_name)["group"]


def local_disk_use(node_name):
    """The disk space the file's instances take on a node: plain disks on
    their primary, drbd disks and 128 MiB of metadata each on both nodes;
    file disks are sparse and take none."""
    used = 0
    for i in FILE["instances"]:
        sizes = [d["size"] for d in i.get("disks", [])]
        if i["disk_template"] == "plain" and i["pnode"] == node_name:
            used += sum(sizes)
        elif i["disk_template"] == "drbd" and node_name in (i["pnode"], i.get("snode")):
            used += sum(sizes) + 128 * len(sizes)
    return used


# ---------------------------------------------------------------- reads
# On the cluster as the file declares it.

def t_version():
    eq(rapi.GetVersion(), 2, "version")


def t_info():
    info = rapi.GetInfo()
    c = FILE["cluster"]
    eq(info["name"], c["name"], "name")
    eq(info["master"], MASTER, "master")
    eq(info["default_hypervisor"], "fake", "hypervisor")
    eq(info["enabled_disk_templates"], c["enabled_disk_templates"], "disk templates")
    eq(info["candidate_pool_size"], c["candidate_pool_size"], "candidate_pool_size")
    eq(info["default_iallocator"], c["default_iallocator"], "default_iallocator")
    eq(sorted(info["tags"]), sorted(c["tags"]), "tags")
    eq(info["nicparams"]["default"]["link"], c["nicparams"]["link"], "nic link")
    assert isinstance(info["hvparams"]["fake"], dict), info["hvparams"]
    assert info["beparams"]["default"]["maxmem"] > 0, info["beparams"]
    eq(rapi.GetNodeRole(info["master"]), "master", "role of the master GetInfo names")


def t_features():
    feats = rapi.GetFeatures()
    eq(sorted(feats), sorted(["instance-create-reqv1", "instance-reinstall-reqv1",
                              "node-evac-res1", "node-migrate-reqv1"]), "features")


def t_os():
    want = []
    for o in FILE["oses"]:
        want += ["%s+%s" % (o["name"], v) for v in o.get("variants", [])] or [o["name"]]
    eq(sorted(rapi.GetOperatingSystems()), sorted(want), "OS names")


def t_nodes():
    eq(sorted(rapi.GetNodes()), sorted(NODES), "node names")
    bulk = {n["name"]: n for n in rapi.GetNodes(bulk=True)}
    eq(sorted(bulk), sorted(NODES), "bulk names")
    groups = {g["name"]: g["uuid"] for g in rapi.GetGroups(bulk=True)}
    for fn in FILE["nodes"]:
        n = bulk[fn["name"]]
        eq(sorted(n.keys()), sorted(N_FIELDS), "node keys")
        eq((n["mtotal"], n["mnode"], n["dtotal"], n["ctotal"]),
           (fn["mtotal"], fn["mnode"], fn["dtotal"], fn["ctotal"]), "%s hardware" % fn["name"])
        eq((n["pip"], n["sip"]), (fn["pip"], fn["sip"]), "%s addresses" % fn["name"])
        eq(n["group.uuid"], groups[fn["group"]], "%s group" % fn["name"])
        eq(sorted(n["tags"]), sorted(fn.get("tags", [])), "%s tags" % fn["name"])
        prim = [i for i in FILE["instances"] if i["pnode"] == fn["name"]]
        sec = [i["name"] for i in FILE["instances"] if i.get("snode") == fn["name"]]
        eq(sorted(n["pinst_list"]), sorted(i["name"] for i in prim), "%s primaries" % fn["name"])
        eq(sorted(n["sinst_list"]), sorted(sec), "%s secondaries" % fn["name"])
        eq((n["pinst_cnt"], n["sinst_cnt"]), (len(prim), len(sec)), "%s instance counts" % fn["name"])
        running = sum(i["beparams"]["maxmem"] for i in prim if file_instance_up(i))
        eq(n["mfree"], fn["mtotal"] - fn["mnode"] - running, "%s mfree" % fn["name"])
        eq(n["dfree"], fn["dtotal"] - local_disk_use(fn["name"]), "%s dfree" % fn["name"])
        eq(n["role"], "M" if fn["name"] == MASTER else "C", "%s role letter" % fn["name"])


def t_node():
    bulk = {n["name"]: n for n in rapi.GetNodes(bulk=True)}
    for name in NODES:
        n = node(name)
        for k in N_FIELDS:
            eq(n[k], bulk[name][k], "%s.%s" % (name, k))
        eq(n["secondary_ip"], n["sip"], "secondary_ip alias")


def t_node_role():
    for name in NODES:
        eq(rapi.GetNodeRole(name), "master" if name == MASTER else "master-candidate", "%s role" % name)


def t_groups():
    eq(sorted(rapi.GetGroups()), sorted(file_names("groups")), "group names")
    for g in rapi.GetGroups(bulk=True):
        fg = file_obj("groups", g["name"])
        members = sorted(n["name"] for n in FILE["nodes"] if n["group"] == g["name"])
        eq(sorted(g["node_list"]), members, "%s nodes" % g["name"])
        eq(g["node_cnt"], len(members), "%s node_cnt" % g["name"])
        eq(g["alloc_policy"], fg["alloc_policy"], "%s alloc_policy" % g["name"])
        eq(sorted(g["tags"]), sorted(fg.get("tags", [])), "%s tags" % g["name"])
        assert "ipolicy" in g and "ndparams" in g, g


def t_group():
    bulk = {g["name"]: g for g in rapi.GetGroups(bulk=True)}
    for name in file_names("groups"):
        g = rapi.GetGroup(name)
        for k in ("uuid", "node_list", "alloc_policy", "tags", "serial_no"):
            eq(g[k], bulk[name][k], "%s.%s" % (name, k))


def t_instances():
    eq(sorted(rapi.GetInstances()), sorted(file_names("instances")), "instance names")
    bulk = {i["name"]: i for i in rapi.GetInstances(bulk=True)}
    for fi in FILE["instances"]:
        i = bulk[fi["name"]]
        eq(sorted(i.keys()), sorted(I_FIELDS), "instance keys")
        eq((i["pnode"], i["snodes"]), (fi["pnode"], [fi["snode"]] if "snode" in fi else []), "%s nodes" % fi["name"])
        eq(i["disk_template"], fi["disk_template"], "%s template" % fi["name"])
        eq(i["disk.sizes"], [d["size"] for d in fi.get("disks", [])], "%s disk sizes" % fi["name"])
        eq(i["os"], fi["os"], "%s os" % fi["name"])
        eq(i["status"], "running" if file_instance_up(fi) else "ADMIN_down", "%s status" % fi["name"])
        eq(i["beparams"]["maxmem"], fi["beparams"]["maxmem"], "%s maxmem" % fi["name"])
        eq(i["beparams"]["memory"], i["beparams"]["maxmem"], "memory alias")
        eq(sorted(i["tags"]), sorted(fi.get("tags", [])), "%s tags" % fi["name"])
        eq(i["oper_state"], i["status"] == "running", "%s oper_state" % fi["name"])
        assert i["disk_usage"] >= sum(i["disk.sizes"]), i


def t_instance():
    bulk = {i["name"]: i for i in rapi.GetInstances(bulk=True)}
    for name in file_names("instances"):
        i = inst(name)
        for k in I_FIELDS:
            eq(i[k], bulk[name][k], "%s.%s" % (name, k))


def t_networks():
    eq(sorted(rapi.GetNetworks()), sorted(file_names("networks")), "network names")
    web1_ip = inst(WEB1)["nic.ips"][0]
    for n in rapi.GetNetworks(bulk=True):
        fn = file_obj("networks", n["name"])
        eq((n["network"], n["gateway"]), (fn["network"], fn["gateway"]), "%s addresses" % n["name"])
        eq(n["free_count"] + n["reserved_count"], len(n["map"]), "%s counts" % n["name"])
        eq(sorted(tuple(c) for c in n["group_list"]),
           sorted((c["group"], c["mode"], c["link"], c.get("vlan", "")) for c in fn["connections"]), "%s connections" % n["name"])
        for ip in fn.get("reserved_ips", []):
            eq(n["map"][int(ip.split(".")[-1])], "X", "%s reservation %s" % (n["name"], ip))
        eq(sorted(n["tags"]), sorted(fn.get("tags", [])), "%s tags" % n["name"])
    front = rapi.GetNetwork("frontend")
    assert web1_ip and web1_ip.startswith("203.0.113."), web1_ip
    eq(front["map"][int(web1_ip.split(".")[-1])], "X", "web1's pool address is taken")
    assert WEB1 in front["inst_list"], front["inst_list"]


def t_query():
    res = rapi.Query("node", ["name", "mtotal", "mfree", "role", "group"])
    eq([f["name"] for f in res["fields"]], ["name", "mtotal", "mfree", "role", "group"], "fields")
    bulk = {n["name"]: n for n in rapi.GetNodes(bulk=True)}
    eq(len(res["data"]), len(bulk), "rows")
    for row in res["data"]:
        eq([st for st, _ in row], [0] * 5, "statuses")
        name, mtotal, mfree, role, group = [v for _, v in row]
        eq((mtotal, mfree, role), (bulk[name]["mtotal"], bulk[name]["mfree"], bulk[name]["role"]), name)
        eq(group, group_of(name), "%s group" % name)
    res = rapi.Query("instance", ["name", "pnode"], qfilter=["=", "pnode", NODE2])
    eq(sorted(row[0][1] for row in res["data"]), sorted(node(NODE2)["pinst_list"]), "filtered query")
    res = rapi.Query("group", ["name", "node_cnt"])
    eq(sorted((r[0][1], r[1][1]) for r in res["data"]),
       sorted((g["name"], g["node_cnt"]) for g in rapi.GetGroups(bulk=True)), "groups")


def t_query_fields():
    names = [f["name"] for f in rapi.QueryFields("instance")["fields"]]
    for f in ("name", "status", "admin_state", "disk.sizes", "be/memory", "disks_active"):
        assert f in names, f
    res = rapi.QueryFields("node", fields=["name", "mtotal", "bootid"])
    eq([(f["name"], f["kind"]) for f in res["fields"]], [("name", "text"), ("mtotal", "unit"), ("bootid", "text")],
       "node fields")


def t_read_tags():
    eq(sorted(rapi.GetClusterTags()), sorted(FILE["cluster"]["tags"]), "cluster tags")
    for n in FILE["nodes"]:
        eq(sorted(rapi.GetNodeTags(n["name"])), sorted(n.get("tags", [])), "%s tags" % n["name"])
    for g in FILE["groups"]:
        eq(sorted(rapi.GetGroupTags(g["name"])), sorted(g.get("tags", [])), "%s tags" % g["name"])
    for i in FILE["instances"]:
        eq(sorted(rapi.GetInstanceTags(i["name"])), sorted(i.get("tags", [])), "%s tags" % i["name"])
    for n in FILE["networks"]:
        eq(sorted(rapi.GetNetworkTags(n["name"])), sorted(n.get("tags", [])), "%s tags" % n["name"])


def t_console():
    eq(rapi.GetInstanceConsole(WEB1),
       {"instance": WEB1, "kind": "msg", "message": "Console not available for fake hypervisor"}, "console")
    # A stopped instance has no console: 503, as Ganeti answers.
    eq(inst(BUILD1)["status"], "ADMIN_down", "build1's status")
    api_error(503, rapi.GetInstanceConsole, BUILD1)


def t_instance_info():
    st = job(rapi.GetInstanceInfo(WEB1))
    res = st["opresult"][0][WEB1]
    i = inst(WEB1)
    eq((res["pnode"], res["snodes"], res["os"], res["disk_template"]),
       (i["pnode"], i["snodes"], i["os"], i["disk_template"]), "nodes, os, template")
    eq([d["size"] for d in res["disks"]], i["disk.sizes"], "disk sizes")
    # NICToTuple: (name, uuid, ip, mac, mode, link, vlan, network, netinfo).
    eq([n[2] for n in res["nics"]], i["nic.ips"], "nic ips")
    eq([n[3] for n in res["nics"]], i["nic.macs"], "nic macs")
    eq([n[4] for n in res["nics"]], i["nic.modes"], "nic modes")
    eq((res["config_state"], res["run_state"]), ("up", "up"), "states")
    eq(res["uuid"], i["uuid"], "uuid")
    msgs = [e[3] for e in st["oplog"][0]]
    assert any("Non-static data requested" in m for m in msgs), msgs
    # Static data: no run state, no locks.
    st = job(rapi.GetInstanceInfo(BUILD1, static=True))
    res = st["opresult"][0][BUILD1]
    eq((res["config_state"], res["run_state"], res["pnode"]), ("down", None, inst(BUILD1)["pnode"]), "static")


def t_storage_units():
    info = rapi.GetInfo()
    for name in (NODE1, NODE4):
        n = node(name)
        st = job(rapi.GetNodeStorageUnits(name, "lvm-vg", "name,size,used,free,allocatable"))
        eq(st["opresult"][0], [[info["volume_group_name"], n["dtotal"], n["dtotal"] - n["dfree"], n["dfree"], True]],
           "%s volume group" % name)
        st = job(rapi.GetNodeStorageUnits(name, "lvm-pv", "name,allocatable"))
        eq(st["opresult"][0], [["/dev/sdb1", True]], "%s physical volume" % name)
        st = job(rapi.GetNodeStorageUnits(name, "file", "name"))
        eq(st["opresult"][0], [[info["file_storage_dir"]]], "%s file storage" % name)


def t_not_found():
    not_found(rapi.GetInstance, "no-such-instance" + DOMAIN)
    not_found(rapi.GetNode, "no-such-node" + DOMAIN)
    not_found(rapi.GetGroup, "no-such-group")
    not_found(rapi.GetNetwork, "no-such-network")
    not_found(rapi.GetInstanceTags, "no-such-instance" + DOMAIN)
    # An unknown job: every field null, as Ganeti 3.0.2 answers.
    st = rapi.GetJobStatus(987654)
    eq(st, dict((k, 987654 if k == "id" else None) for k in J_FIELDS), "unknown job")


# ---------------------------------------------------------------- jobs

def t_cancel_job():
    assert BLOCKER, "no BLOCKER_JOB: no way to hold a job in the queue"
    eq(rapi.GetJobStatus(BLOCKER)["status"], "running", "blocker status")
    # OP_NODE_SET_PARAMS needs node3's node lock, exclusively.
    jid = rapi.ModifyNode(NODE3, drained=True)
    wait_status(jid, ("queued", "waiting"))
    eq(rapi.GetJobStatus(BLOCKER)["status"], "running", "blocker status")
    res = rapi.CancelJob(jid)
    eq(res[0], True, "CancelJob result %r" % (res,))
    assert isinstance(res[1], str), res
    st = job(jid, "canceled")
    eq(st["opstatus"], ["canceled"], "opstatus")
    eq(node(NODE3)["drained"], False, "drained after the cancel")
    # A job that has ended cannot be canceled.
    res = rapi.CancelJob(jid)
    eq(res[0], False, "second CancelJob %r" % (res,))
    JOBS["canceled"] = jid


def t_wait_for_job_change():
    assert BLOCKER, "no BLOCKER_JOB: no job that is still running"
    # Without a previous state the current one comes back at once.
    res = rapi.WaitForJobChange(BLOCKER, ["status"], None, None)
    eq(res["job_info"], ["running"], "first job_info")
    # With it, the long poll returns when the job has ended.
    start = time.time()
    while True:
        res = rapi.WaitForJobChange(BLOCKER, ["status", "opresult"], ["running", [None]], None)
        if res is not None and res["job_info"][0] != "running":
            break
        assert time.time() - start < 60, "blocker still running"
    eq(res["job_info"], ["success", [None]], "job_info at the end")
    eq(rapi.GetJobStatus(BLOCKER)["status"], "success", "blocker status")


def t_failed_job():
    # A job that fails: WaitForJobCompletion answers False, GetJobStatus
    # has the error, and nothing changed.
    jid = rapi.DeleteGroup("alpha")
    done = rapi.WaitForJobCompletion(jid, period=0.05, retries=1200)
    eq(done, False, "WaitForJobCompletion of a failing job")
    st = rapi.GetJobStatus(jid)
    eq((st["status"], st["opstatus"]), ("error", ["error"]), "status")
    eq(st["opresult"][0][0], "OpPrereqError", "error class")
    assert "alpha" in rapi.GetGroups(), "group deleted by a failed job"
    eq(sorted(st.keys()), sorted(J_FIELDS), "job keys")
    eq([op["OP_ID"] for op in st["ops"]], ["OP_GROUP_REMOVE"], "opcodes")
    JOBS["failed"] = jid


def t_get_jobs():
    ids = rapi.GetJobs()
    assert all(isinstance(i, int) for i in ids), ids
    for k in ("canceled", "failed"):
        assert JOBS.get(k) in ids, "%s job %r not in %r" % (k, JOBS.get(k), ids)
    assert int(BLOCKER) in ids, "blocker not listed"
    bulk = {j["id"]: j for j in rapi.GetJobs(bulk=True)}
    eq(sorted(bulk), sorted(ids), "bulk ids")
    eq((bulk[JOBS["canceled"]]["status"], bulk[JOBS["failed"]]["status"]), ("canceled", "error"), "statuses")
    for jid in (JOBS["canceled"], JOBS["failed"]):
        st = rapi.GetJobStatus(jid)
        for k in ("status", "ops", "opstatus", "summary", "received_ts"):
            eq(bulk[jid][k], st[k], "job %d %s" % (jid, k))


JOBS = {}


# ---------------------------------------------------------------- tags

def t_cluster_tags_dry_run():
    job(rapi.AddClusterTags(["cf-dry"], dry_run=True))
    assert "cf-dry" not in rapi.GetClusterTags(), "a dry run added a tag"


def t_cluster_tags_add():
    job(rapi.AddClusterTags(["cf-a", "cf-b"]))
    tags = rapi.GetClusterTags()
    eq(sorted(tags), sorted(FILE["cluster"]["tags"] + ["cf-a", "cf-b"]), "cluster tags")
    eq(sorted(rapi.GetInfo()["tags"]), sorted(tags), "GetInfo tags")


def t_cluster_tags_del():
    job(rapi.DeleteClusterTags(["cf-a", "cf-b"]))
    eq(sorted(rapi.GetClusterTags()), sorted(FILE["cluster"]["tags"]), "cluster tags")


def t_instance_tags_add():
    job(rapi.AddInstanceTags(WEB1, ["cf-i"]))
    eq(sorted(rapi.GetInstanceTags(WEB1)), ["cf-i", "prod", "web"], "instance tags")
    eq(sorted(inst(WEB1)["tags"]), ["cf-i", "prod", "web"], "instance tags field")


def t_instance_tags_del():
    job(rapi.DeleteInstanceTags(WEB1, ["cf-i", "web"]))
    eq(sorted(rapi.GetInstanceTags(WEB1)), ["prod"], "instance tags")


def t_node_tags_add():
    job(rapi.AddNodeTags(NODE2, ["cf-n1", "cf-n2"]))
    eq(sorted(rapi.GetNodeTags(NODE2)), ["cf-n1", "cf-n2", "rack1"], "node tags")
    eq(sorted(node(NODE2)["tags"]), ["cf-n1", "cf-n2", "rack1"], "node tags field")


def t_node_tags_del():
    eq(rapi.GetNodeTags(NODE6), [], "node6's tags before")
    job(rapi.AddNodeTags(NODE6, ["cf-x"]))
    job(rapi.DeleteNodeTags(NODE6, ["cf-x"]))
    eq(rapi.GetNodeTags(NODE6), [], "node tags")
    job(rapi.DeleteNodeTags(NODE3, ["rack2"]))
    eq(node(NODE3)["tags"], [], "node3's tags field")


def t_group_tags_add():
    job(rapi.AddGroupTags("alpha", ["cf-g"]))
    eq(rapi.GetGroupTags("alpha"), ["cf-g"], "group tags")
    eq(rapi.GetGroup("alpha")["tags"], ["cf-g"], "group tags field")


def t_group_tags_del():
    job(rapi.DeleteGroupTags("alpha", ["cf-g"]))
    eq(rapi.GetGroupTags("alpha"), [], "alpha's tags")
    job(rapi.DeleteGroupTags("beta", ["second"]))
    eq(rapi.GetGroup("beta")["tags"], [], "beta's tags field")


def t_network_tags_add():
    job(rapi.AddNetworkTags("backend", ["cf-n", "cf-m"]))
    eq(sorted(rapi.GetNetworkTags("backend")), ["cf-m", "cf-n"], "network tags")
    eq(sorted(rapi.GetNetwork("backend")["tags"]), ["cf-m", "cf-n"], "network tags field")


def t_network_tags_del():
    job(rapi.DeleteNetworkTags("backend", ["cf-m"]))
    eq(rapi.GetNetworkTags("backend"), ["cf-n"], "network tags")
    job(rapi.DeleteNetworkTags("frontend", ["public"]))
    eq(rapi.GetNetwork("frontend")["tags"], [], "frontend's tags field")


# ---------------------------------------------------------------- cluster

def t_modify_cluster():
    st = job(rapi.ModifyCluster(candidate_pool_size=5, maintain_node_health=True))
    info = rapi.GetInfo()
    eq((info["candidate_pool_size"], info["maintain_node_health"]), (5, True), "after ModifyCluster")
    # Ganeti does not demote candidates beyond the new pool size: it says so.
    msgs = [e[3] for e in st["oplog"][0]]
    assert any("more nodes are candidates (6) than desired (5)" in m for m in msgs), msgs
    eq(rapi.GetNodeRole(NODE6), "master-candidate", "node6 still a candidate")
    job(rapi.ModifyCluster(candidate_pool_size=10, maintain_node_health=False))
    info = rapi.GetInfo()
    eq((info["candidate_pool_size"], info["maintain_node_health"]), (10, False), "restored")


def t_redistribute_config():
    before = rapi.GetInfo()["mtime"]
    time.sleep(0.01)
    st = job(rapi.RedistributeConfig())
    eq(st["opresult"], [None], "result")
    eq([op["OP_ID"] for op in st["ops"]], ["OP_CLUSTER_REDIST_CONF"], "opcode")
    after = rapi.GetInfo()["mtime"]
    assert after > before, "cluster mtime %r, was %r" % (after, before)


# ---------------------------------------------------------------- instances

DRBD1 = "cf-drbd1" + DOMAIN      # drbd, explicit nodes in alpha
DRBD2 = "cf-drbd2" + DOMAIN      # drbd, nodes chosen by the default iallocator
PLAIN1 = "cf-plain1" + DOMAIN    # plain, explicit node
PLAIN2 = "cf-plain2" + DOMAIN    # plain, node chosen by the default iallocator
PLAIN1_NEW = "cf-plain1-renamed" + DOMAIN
DRY = "cf-dry" + DOMAIN


def create(name, template, **kwargs):
    return rapi.CreateInstance("create", name, template, [{"size": 1024}], [{}],
                               os_type="noop", beparams={"maxmem": 512, "minmem": 256, "vcpus": 1},
                               name_check=False, ip_check=False, **kwargs)


def t_create_dry_run():
    st = job(create(DRY, "plain", pnode=NODE2, dry_run=True))
    eq(st["opresult"], [[node(NODE2)["uuid"]]], "dry-run result: the nodes' uuids")
    not_found(rapi.GetInstance, DRY)
    assert DRY not in rapi.GetInstances(), "listed"


def t_create_drbd_nodes():
    free1 = node(NODE1)["mfree"]
    st = job(create(DRBD1, "drbd", pnode=NODE1, snode=NODE3))
    eq(st["opresult"], [[NODE1, NODE3]], "result: the instance's nodes")
    i = inst(DRBD1)
    eq((i["pnode"], i["snodes"]), (NODE1, [NODE3]), "nodes")
    eq((i["disk_template"], i["disk.sizes"], i["status"], i["os"]), ("drbd", [1024], "running", "noop"), "instance")
    assert DRBD1 in rapi.GetInstances(), "not listed"
    assert DRBD1 in node(NODE3)["sinst_list"], "not a secondary instance of node3"
    eq(node(NODE1)["mfree"], free1 - 512, "node1's free memory")


def t_create_drbd_alloc():
    st = job(create(DRBD2, "drbd"))
    i = inst(DRBD2)
    eq(st["opresult"], [[i["pnode"]] + i["snodes"]], "result: the instance's nodes")
    eq((i["disk_template"], len(i["snodes"]), i["status"]), ("drbd", 1, "running"), "instance")
    assert i["pnode"] != i["snodes"][0], i
    eq(group_of(i["pnode"]), group_of(i["snodes"][0]), "both nodes in one group")


def t_create_plain_nodes():
    job(create(PLAIN1, "plain", pnode=NODE2))
    i = inst(PLAIN1)
    eq((i["pnode"], i["snodes"], i["disk_template"]), (NODE2, [], "plain"), "node, template")
    eq(i["beparams"]["maxmem"], 512, "maxmem")
    assert PLAIN1 in node(NODE2)["pinst_list"], "not on node2"


def t_create_plain_alloc():
    job(create(PLAIN2, "plain"))
    i = inst(PLAIN2)
    assert i["pnode"] in NODES, i["pnode"]
    eq((i["snodes"], i["disk_template"], i["status"]), ([], "plain", "running"), "snodes, template, status")


def t_modify_instance():
    job(rapi.ModifyInstance(DRBD1, beparams={"memory": 768}))
    i = inst(DRBD1)
    eq((i["beparams"]["memory"], i["beparams"]["maxmem"]), (768, 768), "memory")
    eq(i["custom_beparams"].get("maxmem"), 768, "custom maxmem")


def t_shutdown_instance():
    job(rapi.ShutdownInstance(PLAIN1))
    i = inst(PLAIN1)
    eq((i["status"], i["admin_state"], i["oper_state"]), ("ADMIN_down", "down", False), "state")


def t_reboot_instance():
    # A full reboot of a stopped instance starts it (and marks it up).
    job(rapi.RebootInstance(PLAIN1, reboot_type="full"))
    i = inst(PLAIN1)
    eq((i["status"], i["admin_state"], i["oper_state"]), ("running", "up", True), "state")
    # A hard reboot of a running one leaves it running.
    job(rapi.RebootInstance(PLAIN1, reboot_type="hard"))
    eq(inst(PLAIN1)["status"], "running", "status after a hard reboot")


def t_startup_instance():
    job(rapi.ShutdownInstance(PLAIN1))
    eq(inst(PLAIN1)["status"], "ADMIN_down", "status before")
    job(rapi.StartupInstance(PLAIN1))
    i = inst(PLAIN1)
    eq((i["status"], i["admin_state"], i["oper_state"]), ("running", "up", True), "state")


def t_rename_instance():
    job(rapi.ShutdownInstance(PLAIN1))
    uuid = inst(PLAIN1)["uuid"]
    st = job(rapi.RenameInstance(PLAIN1, PLAIN1_NEW, ip_check=False, name_check=False))
    eq(st["opresult"], [PLAIN1_NEW], "result: the new name")
    not_found(rapi.GetInstance, PLAIN1)
    eq(inst(PLAIN1_NEW)["uuid"], uuid, "uuid")
    names = rapi.GetInstances()
    assert PLAIN1_NEW in names and PLAIN1 not in names, names


LOGGED_JOB = {}


def t_reinstall_instance():
    # The instance is down (RenameInstance).
    st = job(rapi.ReinstallInstance(PLAIN1_NEW, os="debootstrap+trixie", osparams={"cf_param": "1"}, no_startup=True))
    LOGGED_JOB["id"] = st["id"]
    eq([op["OP_ID"] for op in st["ops"]], ["OP_INSTANCE_SHUTDOWN", "OP_INSTANCE_REINSTALL"], "opcodes")
    got = iquery(PLAIN1_NEW, ["os", "custom_osparams", "status"])
    eq(got, {"os": "debootstrap+trixie", "custom_osparams": {"cf_param": "1"}, "status": "ADMIN_down"}, "after")
    st = job(rapi.ReinstallInstance(PLAIN1_NEW, os="noop"))
    eq([op["OP_ID"] for op in st["ops"]],
       ["OP_INSTANCE_SHUTDOWN", "OP_INSTANCE_REINSTALL", "OP_INSTANCE_STARTUP"], "opcodes")
    # Without no_startup the instance is started afterwards.
    eq(iquery(PLAIN1_NEW, ["os", "status"]), {"os": "noop", "status": "running"}, "after a reinstall with start")


def t_reinstall_with_reason():
    # Mismatch 2 of client_calls.md: the client sends ?reason= with the
    # body, which 3.0.2 refuses (400). Decision: accepted, and the reason
    # goes into the reason trail of every opcode of the job.
    st = job(rapi.ReinstallInstance(PLAIN1_NEW, no_startup=True, reason="cf-reinstall"))
    eq([op["OP_ID"] for op in st["ops"]], ["OP_INSTANCE_SHUTDOWN", "OP_INSTANCE_REINSTALL"], "opcodes")
    for op in st["ops"]:
        assert ["gnt:user", "cf-reinstall"] in [r[:2] for r in op["reason"]], op["reason"]
    eq(inst(PLAIN1_NEW)["status"], "ADMIN_down", "status after a reinstall without start")


def t_wait_for_job_change_log():
    # A finished job that logged messages (the reinstall that changed the
    # OS): all its log entries, then only those after a serial.
    jid = LOGGED_JOB.get("id")
    assert jid, "no job with log entries (ReinstallInstance failed)"
    res = rapi.WaitForJobChange(jid, ["status"], None, 0)
    eq(res["job_info"], ["success"], "job_info")
    entries = res["log_entries"]
    serials = [e[0] for e in entries]
    eq(serials, sorted(serials), "log serials")
    msgs = [e[3] for e in entries]
    assert "Changing OS scripts to 'debootstrap+trixie'..." in msgs, msgs
    oplog = [e for op in rapi.GetJobStatus(jid)["oplog"] for e in op]
    eq([e[0] for e in oplog], serials, "serials of GetJobStatus' oplog")
    res = rapi.WaitForJobChange(jid, ["status"], None, serials[0])
    eq([e[0] for e in res["log_entries"]], serials[1:], "entries after the first serial")


def t_recreate_disks():
    # PLAIN1_NEW is down. In place, as they are:
    before = inst(PLAIN1_NEW)
    st = job(rapi.RecreateInstanceDisks(PLAIN1_NEW, disks=[0]))
    eq(st["opresult"], [None], "result")
    eq(inst(PLAIN1_NEW)["disk.sizes"], before["disk.sizes"], "disk sizes")
    # With a new size (a [index, {changes}] entry).
    dfree = node(before["pnode"])["dfree"]
    job(rapi.RecreateInstanceDisks(PLAIN1_NEW, disks=[[0, {"size": 1536}]]))
    eq(inst(PLAIN1_NEW)["disk.sizes"], [1536], "disk sizes after a recreation with a new size")
    eq(node(before["pnode"])["dfree"], dfree - (1536 - before["disk.sizes"][0]), "node's free disk")
    # Not while the instance runs.
    job_error(rapi.RecreateInstanceDisks(DRBD1), "cannot recreate disks")


def t_grow_disk():
    before = inst(PLAIN1_NEW)["disk.sizes"]
    job(rapi.GrowInstanceDisk(PLAIN1_NEW, 0, 512))
    eq(inst(PLAIN1_NEW)["disk.sizes"], [before[0] + 512], "disk sizes")


def t_activate_disks():
    eq(iquery(PLAIN1_NEW, ["disks_active", "status"]), {"disks_active": False, "status": "ADMIN_down"}, "before")
    st = job(rapi.ActivateInstanceDisks(PLAIN1_NEW))
    eq(iquery(PLAIN1_NEW, ["disks_active"])["disks_active"], True, "disks_active")
    pnode = inst(PLAIN1_NEW)["pnode"]
    eq([(d[0], d[1]) for d in st["opresult"][0]], [(pnode, "disk/0")], "result: the disk's node and name")


def t_deactivate_disks():
    job(rapi.DeactivateInstanceDisks(PLAIN1_NEW))
    eq(iquery(PLAIN1_NEW, ["disks_active"])["disks_active"], False, "disks_active")


def t_replace_disks():
    eq((inst(DRBD1)["pnode"], inst(DRBD1)["snodes"]), (NODE1, [NODE3]), "nodes before")
    # A new secondary given by name.
    job(rapi.ReplaceInstanceDisks(DRBD1, mode="replace_new_secondary", remote_node=NODE2))
    eq(inst(DRBD1)["snodes"], [NODE2], "secondary after replace_new_secondary")
    assert DRBD1 in node(NODE2)["sinst_list"] and DRBD1 not in node(NODE3)["sinst_list"], "sinst lists"
    # One chosen by the iallocator: node3 is the only other node of alpha.
    job(rapi.ReplaceInstanceDisks(DRBD1, mode="replace_new_secondary", iallocator="hail"))
    eq(inst(DRBD1)["snodes"], [NODE3], "secondary chosen by the iallocator")
    # In place: the nodes stay.
    job(rapi.ReplaceInstanceDisks(DRBD1, disks=[0], mode="replace_on_secondary"))
    job(rapi.ReplaceInstanceDisks(DRBD1))
    i = inst(DRBD1)
    eq((i["pnode"], i["snodes"], i["status"]), (NODE1, [NODE3], "running"), "after in-place replacements")
    # Only a drbd instance has disks to replace; Ganeti checks its layout first.
    job_error(rapi.ReplaceInstanceDisks(PLAIN2), "expected one secondary but found 0")


def t_migrate_instance():
    job(rapi.MigrateInstance(DRBD1))
    i = inst(DRBD1)
    eq((i["pnode"], i["snodes"], i["status"]), (NODE3, [NODE1], "running"), "after migration")
    # In the other group: app1 moves from node4 to node5.
    job(rapi.MigrateInstance(APP1, mode="live"))
    eq((inst(APP1)["pnode"], inst(APP1)["snodes"]), (NODE5, [NODE4]), "app1 after migration")


def t_failover_instance():
    job(rapi.FailoverInstance(DRBD1))
    i = inst(DRBD1)
    eq((i["pnode"], i["snodes"], i["status"]), (NODE1, [NODE3], "running"), "after failover")
    job(rapi.FailoverInstance(APP1))
    eq((inst(APP1)["pnode"], inst(APP1)["snodes"]), (NODE4, [NODE5]), "app1 after failover")


def t_prepare_export():
    st = job(rapi.PrepareExport(PLAIN2, "local"))
    eq(st["opresult"], [None], "local mode result")
    names = []
    for _ in range(2):
        st = job(rapi.PrepareExport(PLAIN2, "remote"))
        res = st["opresult"][0]
        eq(sorted(res), ["handshake", "x509_ca", "x509_key_name"], "remote mode keys")
        eq(len(res["handshake"]), 3, "handshake")
        eq(res["handshake"][0], 0, "handshake version")
        eq(len(res["x509_key_name"]), 3, "key name")
        assert res["x509_ca"].startswith("X-Ganeti-Signature: ") and "BEGIN CERTIFICATE" in res["x509_ca"], res
        names.append(res["x509_key_name"][0])
    assert names[0] != names[1], "the same key name twice: %r" % names


def t_export_instance():
    i = inst(PLAIN2)
    eq(i["status"], "running", "status before")
    target = [n for n in ALPHA if n != i["pnode"]][0]
    st = job(rapi.ExportInstance(PLAIN2, "local", target, shutdown=True))
    eq(st["opresult"], [[True, [True]]], "result: finalized, one disk exported")
    eq(inst(PLAIN2)["status"], "running", "restarted after the export")
    msgs = [e[3] for e in st["oplog"][0]]
    assert any(("to %s" % target) in m for m in msgs), msgs
    # With remove_instance the instance is gone afterwards.
    dfree = node(i["pnode"])["dfree"]
    st = job(rapi.ExportInstance(PLAIN2, "local", target, shutdown=True, remove_instance=True))
    eq(st["opresult"], [[True, [True]]], "result")
    not_found(rapi.GetInstance, PLAIN2)
    assert PLAIN2 not in node(i["pnode"])["pinst_list"], "still on its node"
    eq(node(i["pnode"])["dfree"], dfree + 1024, "its disk is freed")


def t_delete_instance():
    for name in (PLAIN1_NEW, DRBD2):
        i = inst(name)
        job(rapi.DeleteInstance(name))
        not_found(rapi.GetInstance, name)
        assert name not in rapi.GetInstances(), name
        assert name not in node(i["pnode"])["pinst_list"], "still on its node"


# ---------------------------------------------------------------- groups

def t_create_group():
    job(rapi.CreateGroup("cf-group0", dry_run=True))
    not_found(rapi.GetGroup, "cf-group0")
    job(rapi.CreateGroup("cf-group", alloc_policy="last_resort"))
    g = rapi.GetGroup("cf-group")
    eq((g["alloc_policy"], g["node_cnt"], g["node_list"]), ("last_resort", 0, []), "new group")
    assert "cf-group" in rapi.GetGroups(), "not listed"


def t_rename_group():
    uuid = rapi.GetGroup("cf-group")["uuid"]
    job(rapi.RenameGroup("cf-group", "cf-group2"))
    not_found(rapi.GetGroup, "cf-group")
    eq(rapi.GetGroup("cf-group2")["uuid"], uuid, "uuid")


def t_modify_group():
    job(rapi.ModifyGroup("cf-group2", alloc_policy="unallocable"))
    eq(rapi.GetGroup("cf-group2")["alloc_policy"], "unallocable", "alloc_policy")


def t_assign_group_nodes():
    # node6 holds test1 (diskless): no instance is split.
    job(rapi.AssignGroupNodes("cf-group2", [NODE6]))
    g = rapi.GetGroup("cf-group2")
    eq(g["node_list"], [NODE6], "node_list")
    eq(node(NODE6)["group.uuid"], g["uuid"], "node6's group")
    eq(rapi.GetGroup("beta")["node_list"], [NODE4, NODE5], "beta's nodes")
    job(rapi.AssignGroupNodes("beta", [NODE6]))
    eq(rapi.GetGroup("cf-group2")["node_cnt"], 0, "empty again")
    eq(rapi.GetGroup("beta")["node_list"], BETA, "beta's nodes")


def t_delete_group():
    job(rapi.DeleteGroup("cf-group2"))
    not_found(rapi.GetGroup, "cf-group2")
    eq(sorted(rapi.GetGroups()), ["alpha", "beta"], "groups")


# ---------------------------------------------------------------- nodes

def t_set_node_role():
    eq(rapi.GetNodeRole(NODE3), "master-candidate", "role before")
    job(rapi.SetNodeRole(NODE3, "drained"))
    eq(rapi.GetNodeRole(NODE3), "drained", "role")
    n = node(NODE3)
    eq((n["drained"], n["master_candidate"], n["role"]), (True, False, "D"), "node fields")
    job(rapi.SetNodeRole(NODE3, "offline"))
    eq(rapi.GetNodeRole(NODE3), "offline", "role")
    eq(node(NODE3)["offline"], True, "offline")
    # "regular" sends drained=False and offline=False: as in Ganeti
    # (LUNodeSetParams' self-promotion), the node is promoted back to
    # master candidate while the candidate pool (10) is not full.
    job(rapi.SetNodeRole(NODE3, "regular"))
    eq(rapi.GetNodeRole(NODE3), "master-candidate", "role after 'regular'")
    n = node(NODE3)
    eq((n["offline"], n["drained"], n["master_candidate"]), (False, False, True), "node fields")
    job(rapi.SetNodeRole(NODE3, "drained"))
    job(rapi.SetNodeRole(NODE3, "master-candidate"))
    eq(rapi.GetNodeRole(NODE3), "master-candidate", "role")


def t_modify_node():
    job(rapi.ModifyNode(NODE2, ndparams={"spindle_count": 3}))
    eq(node(NODE2)["ndparams"]["spindle_count"], 3, "spindle_count")
    job(rapi.ModifyNode(NODE2, offline=True))
    eq(rapi.GetNodeRole(NODE2), "offline", "role")
    job(rapi.ModifyNode(NODE2, offline=False))
    eq(node(NODE2)["offline"], False, "offline")


def t_powercycle_node():
    before = nquery(NODE4, ["bootid", "serial_no"])
    st = job(rapi.PowercycleNode(NODE4))
    eq(st["opresult"], ["Reboot scheduled in 5 seconds"], "result")
    after = nquery(NODE4, ["bootid", "serial_no"])
    assert after["bootid"] != before["bootid"], "same boot id after a powercycle: %r" % after
    eq(after["serial_no"], before["serial_no"], "serial_no (no configuration change)")
    # The master only with force.
    job_error(rapi.PowercycleNode(MASTER), "force parameter was not set")
    boot = nquery(MASTER, ["bootid"])["bootid"]
    job(rapi.PowercycleNode(MASTER, force=True))
    assert nquery(MASTER, ["bootid"])["bootid"] != boot, "the master did not reboot"


def t_modify_storage():
    job(rapi.ModifyNodeStorageUnits(NODE4, "lvm-pv", "/dev/sdb1", allocatable=False))
    st = job(rapi.GetNodeStorageUnits(NODE4, "lvm-pv", "name,allocatable"))
    eq(st["opresult"][0], [["/dev/sdb1", False]], "after allocatable=False")
    st = job(rapi.GetNodeStorageUnits(NODE5, "lvm-pv", "name,allocatable"))
    eq(st["opresult"][0], [["/dev/sdb1", True]], "another node's unit")
    job(rapi.ModifyNodeStorageUnits(NODE4, "lvm-pv", "/dev/sdb1", allocatable=True))
    st = job(rapi.GetNodeStorageUnits(NODE4, "lvm-pv", "name,allocatable"))
    eq(st["opresult"][0], [["/dev/sdb1", True]], "after allocatable=True")
    job_error(rapi.ModifyNodeStorageUnits(NODE4, "lvm-pv", "/dev/nosuch", allocatable=False), "not found")


def t_repair_storage():
    vg = rapi.GetInfo()["volume_group_name"]
    st = job(rapi.RepairNodeStorageUnits(NODE5, "lvm-vg", vg))
    eq(st["opresult"], [None], "result")
    msgs = [e[3] for e in st["oplog"][0]]
    eq(msgs, ["Repairing storage unit '%s' on %s ..." % (vg, NODE5)], "log")
    job_error(rapi.RepairNodeStorageUnits(NODE5, "lvm-pv", "/dev/sdb1"), "can not be repaired")


# ---------------------------------------------------------------- networks

NET = "cf-net"
NET0 = "cf-net-notags"


def t_create_network_without_tags():
    # Mismatch 1 of client_calls.md: the client sends "tags": null when no
    # tags are given, which 3.0.2 refuses (400). Decision: null means no
    # tags, so the stock client's default call works.
    job(rapi.CreateNetwork(NET0, "10.21.0.0/24"))
    n = rapi.GetNetwork(NET0)
    eq((n["network"], n["gateway"], n["tags"], n["group_list"]), ("10.21.0.0/24", None, [], []), "network")
    eq(rapi.GetNetworkTags(NET0), [], "tags")


def t_create_network():
    job(rapi.CreateNetwork(NET, "10.20.0.0/24", gateway="10.20.0.1",
                           add_reserved_ips="10.20.0.10,10.20.0.11", tags="cf-t1,cf-t2"))
    n = rapi.GetNetwork(NET)
    eq((n["network"], n["gateway"]), ("10.20.0.0/24", "10.20.0.1"), "network")
    eq(sorted(n["tags"]), ["cf-t1", "cf-t2"], "tags")
    eq(n["map"][10:12], "XX", "reserved ips in the map")
    eq(n["group_list"], [], "no connections")
    assert NET in rapi.GetNetworks(), "not listed"


def t_connect_network():
    job(rapi.ConnectNetwork(NET, "alpha", "bridged", "br200"))
    job(rapi.ConnectNetwork(NET, "beta", "routed", "rt300", vlan="100"))
    eq(sorted(tuple(c) for c in rapi.GetNetwork(NET)["group_list"]),
       [("alpha", "bridged", "br200", ""), ("beta", "routed", "rt300", "100")], "group_list")


def t_modify_network():
    reserved = rapi.GetNetwork(NET)["reserved_count"]
    # Ganeti refuses a gateway and reservations in one call.
    job(rapi.ModifyNetwork(NET, gateway="10.20.0.254"))
    eq(rapi.GetNetwork(NET)["gateway"], "10.20.0.254", "gateway")
    job(rapi.ModifyNetwork(NET, add_reserved_ips=["10.20.0.20"], remove_reserved_ips=["10.20.0.10"]))
    n = rapi.GetNetwork(NET)
    eq((n["map"][10], n["map"][20]), (".", "X"), "reservations in the map")
    eq(n["reserved_count"], reserved, "reserved_count")


def t_disconnect_network():
    job(rapi.DisconnectNetwork(NET, "alpha"))
    eq(rapi.GetNetwork(NET)["group_list"], [["beta", "routed", "rt300", "100"]], "group_list")
    job(rapi.DisconnectNetwork(NET, "beta"))
    eq(rapi.GetNetwork(NET)["group_list"], [], "group_list")


def t_delete_network():
    for name in (NET, NET0):
        job(rapi.DeleteNetwork(name))
        not_found(rapi.GetNetwork, name)
    eq(sorted(rapi.GetNetworks()), sorted(file_names("networks")), "networks")


# ---------------------------------------------------------------- filters

FILTER = {}
PAUSE_REASON = "cf-pause-me"


def t_add_filter():
    uuid = rapi.AddFilter(10, [["reason", ["=", "reason", PAUSE_REASON]]], "PAUSE")
    FILTER["uuid"] = uuid
    f = rapi.GetFilter(uuid)
    eq((f["priority"], f["action"], f["uuid"]), (10, "PAUSE", uuid), "filter")
    assert uuid in rapi.GetFilters(), "not listed"
    # As luxid does, "=" is stored as "=="; the client adds its own entry
    # to the reason trail.
    bulk = {x["uuid"]: x for x in rapi.GetFilters(bulk=True)}
    eq(bulk[uuid]["predicates"], [["reason", ["==", "reason", PAUSE_REASON]]], "predicates")
    eq(bulk[uuid]["reason_trail"][0][:2], ["gnt:client", ""], "reason trail")
    # The effect: a job whose reason trail matches stays queued; cancel it.
    jid = rapi.AddClusterTags(["cf-paused"], reason=PAUSE_REASON)
    time.sleep(0.3)
    eq(rapi.GetJobStatus(jid)["status"], "queued", "job behind a PAUSE filter")
    res = rapi.CancelJob(jid)
    eq(res[0], True, "CancelJob %r" % (res,))
    job(jid, "canceled")
    assert "cf-paused" not in rapi.GetClusterTags(), "tag of a canceled job"
    # Other jobs run.
    job(rapi.AddClusterTags(["cf-unpaused"]))
    job(rapi.DeleteClusterTags(["cf-unpaused"]))


def t_replace_filter():
    uuid = FILTER.get("uuid")
    assert uuid, "no filter (AddFilter failed)"
    eq(rapi.ReplaceFilter(uuid, 20, [["reason", ["=", "reason", PAUSE_REASON]]], "REJECT"), uuid, "uuid")
    f = rapi.GetFilter(uuid)
    eq((f["priority"], f["action"]), (20, "REJECT"), "filter")
    # The effect: a matching job is now rejected (Ganeti cancels it).
    jid = rapi.AddClusterTags(["cf-rejected"], reason=PAUSE_REASON)
    job(jid, "canceled")
    assert "cf-rejected" not in rapi.GetClusterTags(), "tag of a rejected job"


def t_delete_filter():
    uuid = FILTER.get("uuid")
    assert uuid, "no filter (AddFilter failed)"
    eq(rapi.DeleteFilter(uuid), None, "result")
    assert uuid not in rapi.GetFilters(), "still listed"
    not_found(rapi.GetFilter, uuid)
    # The effect: a job with the reason runs again.
    job(rapi.AddClusterTags(["cf-after-filter"], reason=PAUSE_REASON))
    job(rapi.DeleteClusterTags(["cf-after-filter"]))


# ---------------------------------------------------------------- multi-allocation and node moves

MULTI = ["cf-multi1" + DOMAIN, "cf-multi2" + DOMAIN]


def followups(st):
    """Waits for the jobs an opcode result submitted ({"jobs": [[ok, id]]}
    or [[ok, id], ...])."""
    res = st["opresult"][0]
    jobs = res["jobs"] if isinstance(res, dict) else res
    assert jobs, "no follow-up jobs in %r" % (res,)
    for ok, jid in jobs:
        assert ok, "follow-up job refused: %r" % (jid,)
        job(jid)


def t_instance_allocation():
    alloc = rapi.InstanceAllocation("create", MULTI[0], "plain", [{"size": 1024}], [{}],
                                    os_type="noop", name_check=False)
    eq(alloc, {"mode": "create", "name": MULTI[0], "disk_template": "plain", "disks": [{"size": 1024}],
               "nics": [{}], "os_type": "noop", "name_check": False}, "allocation dict")


def t_multi_alloc():
    # The iallocator goes on the multi-allocation, not on the instances
    # (Ganeti refuses it there).
    allocs = [rapi.InstanceAllocation("create", name, "plain", [{"size": 1024}], [{}],
                                      os_type="noop", beparams={"maxmem": 256, "minmem": 256},
                                      name_check=False, ip_check=False)
              for name in MULTI]
    st = job(rapi.InstancesMultiAlloc(allocs, iallocator="hail"))
    res = st["opresult"][0]
    eq(sorted(res["allocatable"]), sorted(MULTI), "allocatable")
    eq(res["failed"], [], "failed")
    followups(st)
    for name in MULTI:
        i = inst(name)
        assert i["pnode"] in NODES, i
        eq((i["disk_template"], i["status"], i["beparams"]["maxmem"]), ("plain", "running", 256), "instance")
    for name in MULTI:
        job(rapi.DeleteInstance(name))
        not_found(rapi.GetInstance, name)


def t_evacuate_node():
    # node2's secondary instances (web1, at least) get other secondaries.
    secs = node(NODE2)["sinst_list"]
    assert WEB1 in secs, secs
    before = dict((name, inst(name)["pnode"]) for name in secs)
    st = job(rapi.EvacuateNode(NODE2, iallocator="hail", mode=client.NODE_EVAC_SEC))
    followups(st)
    eq(node(NODE2)["sinst_cnt"], 0, "node2's secondaries")
    for name, pnode in sorted(before.items()):
        i = inst(name)
        eq(i["pnode"], pnode, "%s's primary" % name)
        assert i["snodes"][0] not in (NODE2, pnode), i
        eq(group_of(i["snodes"][0]), group_of(pnode), "%s's new secondary is in its group" % name)


def t_migrate_node():
    # node1's primary drbd instances move to their secondaries.
    moved = {}
    for name in node(NODE1)["pinst_list"]:
        i = inst(name)
        if i["disk_template"] == "drbd":
            moved[name] = i["snodes"][0]
    assert DRBD1 in moved and WEB1 in moved, moved
    st = job(rapi.MigrateNode(NODE1))
    followups(st)
    for name, target in sorted(moved.items()):
        eq(inst(name)["pnode"], target, "%s's primary" % name)
        eq(inst(name)["status"], "running", "%s's status" % name)
    assert not set(moved) & set(node(NODE1)["pinst_list"]), "still on node1"


def t_delete_drbd1():
    job(rapi.DeleteInstance(DRBD1))
    not_found(rapi.GetInstance, DRBD1)


CHECKS = [
    # Jobs, first: the blocker job runs for a few seconds only. Neither
    # check changes the cluster.
    ("CancelJob: a job waiting for a lock is canceled and has no effect", t_cancel_job),
    ("WaitForJobChange: long poll returns the new status of a job", t_wait_for_job_change),
    # Reads of the cluster as declared.
    ("GetVersion: 2", t_version),
    ("GetInfo: the cluster file's settings", t_info),
    ("GetFeatures: the four features", t_features),
    ("GetOperatingSystems: OSes and variants", t_os),
    ("GetNodes: names, fields, memory, instances", t_nodes),
    ("GetNode: each as in the bulk list", t_node),
    ("GetNodeRole: master and candidates", t_node_role),
    ("GetGroups: names, members, policy, tags", t_groups),
    ("GetGroup: each as in the bulk list", t_group),
    ("GetInstances: names, fields, nodes, state", t_instances),
    ("GetInstance: each as in the bulk list", t_instance),
    ("GetNetworks/GetNetwork: addresses, reservations, connections", t_networks),
    ("Query: nodes, filtered instances, groups", t_query),
    ("QueryFields: instance and node fields", t_query_fields),
    ("Get*Tags: every object's tags", t_read_tags),
    ("GetInstanceConsole: fake hypervisor console, 503 when stopped", t_console),
    ("GetInstanceInfo: job result is the instance's data", t_instance_info),
    ("GetNodeStorageUnits: vg, pv and file units match the node", t_storage_units),
    ("unknown objects: 404; unknown job: null fields", t_not_found),
    # Jobs.
    ("WaitForJobCompletion: False for a failed job, nothing changed", t_failed_job),
    ("GetJobs: ids and bulk entries agree with GetJobStatus", t_get_jobs),
    # Tags.
    ("AddClusterTags: dry run adds nothing", t_cluster_tags_dry_run),
    ("AddClusterTags: tags added", t_cluster_tags_add),
    ("DeleteClusterTags: tags removed", t_cluster_tags_del),
    ("AddInstanceTags: tag added", t_instance_tags_add),
    ("DeleteInstanceTags: tags removed", t_instance_tags_del),
    ("AddNodeTags: tags added", t_node_tags_add),
    ("DeleteNodeTags: tags removed", t_node_tags_del),
    ("AddGroupTags: tag added", t_group_tags_add),
    ("DeleteGroupTags: tags removed", t_group_tags_del),
    ("AddNetworkTags: tags added", t_network_tags_add),
    ("DeleteNetworkTags: tags removed", t_network_tags_del),
    # Cluster.
    ("ModifyCluster: pool size and node health set and restored", t_modify_cluster),
    ("RedistributeConfig: the cluster's mtime moves", t_redistribute_config),
    # Instances.
    ("CreateInstance: dry run creates nothing", t_create_dry_run),
    ("CreateInstance: drbd on explicit nodes", t_create_drbd_nodes),
    ("CreateInstance: drbd placed by the default iallocator", t_create_drbd_alloc),
    ("CreateInstance: plain on an explicit node", t_create_plain_nodes),
    ("CreateInstance: plain placed by the default iallocator", t_create_plain_alloc),
    ("ModifyInstance: beparams memory", t_modify_instance),
    ("ShutdownInstance: instance stopped", t_shutdown_instance),
    ("RebootInstance: full reboot starts a stopped instance", t_reboot_instance),
    ("StartupInstance: instance started", t_startup_instance),
    ("RenameInstance: renamed after shutdown", t_rename_instance),
    ("ReinstallInstance: OS and OS params set, started or not", t_reinstall_instance),
    ("ReinstallInstance with reason: accepted, reason in the trail (3.0.2: 400)", t_reinstall_with_reason),
    ("WaitForJobChange: log entries of a finished job, after a serial", t_wait_for_job_change_log),
    ("RecreateInstanceDisks: in place and with a new size; not while running", t_recreate_disks),
    ("GrowInstanceDisk: disk 0 grown", t_grow_disk),
    ("ActivateInstanceDisks: disks active", t_activate_disks),
    ("DeactivateInstanceDisks: disks inactive", t_deactivate_disks),
    ("ReplaceInstanceDisks: new secondary by name and by iallocator, in place", t_replace_disks),
    ("MigrateInstance: drbd primary and secondary swapped, in both groups", t_migrate_instance),
    ("FailoverInstance: drbd primary and secondary swapped back", t_failover_instance),
    ("PrepareExport: local and remote modes", t_prepare_export),
    ("ExportInstance: exported and restarted; removed with remove_instance", t_export_instance),
    ("DeleteInstance: instances gone", t_delete_instance),
    # Groups.
    ("CreateGroup: dry run, then created", t_create_group),
    ("RenameGroup: group renamed", t_rename_group),
    ("ModifyGroup: alloc_policy changed", t_modify_group),
    ("AssignGroupNodes: node moved to the group and back", t_assign_group_nodes),
    ("DeleteGroup: group gone", t_delete_group),
    # Nodes.
    ("SetNodeRole: drained, offline, regular, master-candidate", t_set_node_role),
    ("ModifyNode: ndparams, offline", t_modify_node),
    ("PowercycleNode: new boot id; the master only with force", t_powercycle_node),
    ("ModifyNodeStorageUnits: allocatable off and on", t_modify_storage),
    ("RepairNodeStorageUnits: volume group repaired; pv refused", t_repair_storage),
    # Networks.
    ("CreateNetwork without tags: created (3.0.2: 400)", t_create_network_without_tags),
    ("CreateNetwork: network created with reservations and tags", t_create_network),
    ("ConnectNetwork: connected to both groups", t_connect_network),
    ("ModifyNetwork: gateway and reserved ips", t_modify_network),
    ("DisconnectNetwork: disconnected", t_disconnect_network),
    ("DeleteNetwork: networks gone", t_delete_network),
    # Filters.
    ("AddFilter: a PAUSE filter holds matching jobs (canceled with CancelJob)", t_add_filter),
    ("ReplaceFilter: the filter now rejects", t_replace_filter),
    ("DeleteFilter: filter gone, jobs run", t_delete_filter),
    # Multi-allocation and node moves.
    ("InstanceAllocation: the allocation dict", t_instance_allocation),
    ("InstancesMultiAlloc: two instances allocated by hail", t_multi_alloc),
    ("EvacuateNode: secondaries moved off a node by hail", t_evacuate_node),
    ("MigrateNode: primaries migrated off a node", t_migrate_node),
    ("DeleteInstance: drbd instance gone", t_delete_drbd1),
]


def t_coverage():
    methods = client_methods()
    missing = [m for m in methods if m not in covered]
    print("client methods: %d public, %d called by passing checks" % (len(methods), len(methods) - len(missing)))
    if missing:
        raise AssertionError("public methods of GanetiRapiClient no passing check called: %s" % ", ".join(missing))


def main():
    start = time.time()
    for what, fn in CHECKS:
        check(what, fn)
    check("coverage: every public method of GanetiRapiClient called by a passing check", t_coverage)
    print("time: %.1fs" % (time.time() - start))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


main()
