"""Drive the read methods of Ganeti's official RAPI client (Debian's
python3-ganeti-rapi) against a ganeti-gateway and check the answers.

Run by e2e/pyclient_test.go with Debian's /usr/bin/python3. Environment:
RAPI_HOST, RAPI_PORT, RAPI_CAFILE (the server's certificate: TLS is
verified), RAPI_USER and RAPI_PASSWORD (a user with the "read" option),
EXPECT (JSON: cluster name, master, node / instance / group
names, OS names, network names). Prints one line per check and ends with
"N passed, N failed"; exits non-zero on any failure.
"""
import json
import os
import sys
import traceback

from ganeti.rapi import client

EXPECT = json.loads(os.environ["EXPECT"])
rapi = client.GanetiRapiClient(
    os.environ["RAPI_HOST"], port=int(os.environ["RAPI_PORT"]),
    username=os.environ["RAPI_USER"], password=os.environ["RAPI_PASSWORD"],
    curl_config_fn=client.GenericCurlConfig(cafile=os.environ["RAPI_CAFILE"]))

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

passed = failed = 0


def check(name, fn):
    global passed, failed
    try:
        fn()
    except Exception:  # pylint: disable=broad-except
        failed += 1
        print("FAIL %s\n%s" % (name, traceback.format_exc()))
    else:
        passed += 1
        print("ok   %s" % name)


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))


def t_version():
    eq(rapi.GetVersion(), 2, "version")


def t_info():
    info = rapi.GetInfo()
    eq(info["name"], EXPECT["cluster"], "name")
    eq(info["master"], EXPECT["master"], "master")
    eq(info["default_hypervisor"], "fake", "hypervisor")
    assert isinstance(info["hvparams"]["fake"], dict), info["hvparams"]
    assert info["beparams"]["default"]["maxmem"] > 0


def t_features():
    feats = rapi.GetFeatures()
    for f in ("instance-create-reqv1", "instance-reinstall-reqv1", "node-evac-res1", "node-migrate-reqv1"):
        assert f in feats, feats


def t_os():
    eq(sorted(rapi.GetOperatingSystems()), sorted(EXPECT["os"]), "os")


def t_nodes():
    eq(sorted(rapi.GetNodes()), sorted(EXPECT["nodes"]), "node names")
    bulk = rapi.GetNodes(bulk=True)
    eq(sorted(n["name"] for n in bulk), sorted(EXPECT["nodes"]), "bulk names")
    for n in bulk:
        eq(sorted(n.keys()), sorted(N_FIELDS), "node keys")
        assert 0 <= n["mfree"] <= n["mtotal"], n
        assert n["dfree"] <= n["dtotal"], n
        eq(n["pinst_cnt"], len(n["pinst_list"]), "pinst_cnt")
    eq(sum(n["pinst_cnt"] for n in bulk), len(EXPECT["instances"]), "primary instances")
    masters = [n["name"] for n in bulk if n["role"] == "M"]
    eq(masters, [EXPECT["master"]], "master role letter")


def t_node():
    node = rapi.GetNode(EXPECT["master"])
    eq(node["name"], EXPECT["master"], "name")
    eq(node["secondary_ip"], node["sip"], "secondary_ip alias")


def t_node_role():
    eq(rapi.GetNodeRole(EXPECT["master"]), "master", "master role")
    for name in EXPECT["nodes"]:
        assert rapi.GetNodeRole(name) in ("master", "master-candidate", "regular", "drained", "offline")


def t_groups():
    eq(sorted(rapi.GetGroups()), sorted(EXPECT["groups"]), "group names")
    bulk = rapi.GetGroups(bulk=True)
    eq(sum(g["node_cnt"] for g in bulk), len(EXPECT["nodes"]), "nodes in groups")
    for g in bulk:
        eq(g["node_cnt"], len(g["node_list"]), "node_cnt")
        assert "ipolicy" in g and "ndparams" in g


def t_instances():
    eq(sorted(rapi.GetInstances()), sorted(EXPECT["instances"]), "instance names")
    bulk = rapi.GetInstances(bulk=True)
    eq(sorted(i["name"] for i in bulk), sorted(EXPECT["instances"]), "bulk names")
    for i in bulk:
        eq(sorted(i.keys()), sorted(I_FIELDS), "instance keys")
        eq(i["beparams"]["memory"], i["beparams"]["maxmem"], "memory alias")
        assert i["pnode"] in EXPECT["nodes"], i["pnode"]
        eq(len(i["nic.macs"]), len(i["nic.ips"]), "nic lists")
        eq(i["disk_usage"] >= sum(i["disk.sizes"]), True, "disk usage")


def t_instance():
    for name in EXPECT["instances"]:
        inst = rapi.GetInstance(name)
        eq(inst["name"], name, "name")
        eq(inst["oper_state"], inst["status"] == "running", "oper_state vs status")


def t_networks():
    eq(sorted(rapi.GetNetworks()), sorted(EXPECT["networks"]), "networks")
    for n in rapi.GetNetworks(bulk=True):
        assert n["free_count"] + n["reserved_count"] == len(n["map"]), n


def t_jobs():
    jobs = rapi.GetJobs()
    assert isinstance(jobs, list), jobs


def t_query():
    res = rapi.Query("node", ["name", "mtotal", "role"])
    eq([f["name"] for f in res["fields"]], ["name", "mtotal", "role"], "fields")
    bulk = {n["name"]: n for n in rapi.GetNodes(bulk=True)}
    eq(len(res["data"]), len(bulk), "rows")
    for (st_name, name), (st_m, mtotal), (st_r, role) in res["data"]:
        eq((st_name, st_m, st_r), (0, 0, 0), "status")
        eq(mtotal, bulk[name]["mtotal"], "mtotal")
        eq(role, bulk[name]["role"], "role")
    res = rapi.Query("instance", ["name", "status"], qfilter=["=", "name", EXPECT["instances"][0]])
    eq([row[0][1] for row in res["data"]], [EXPECT["instances"][0]], "filtered query")


def t_query_fields():
    res = rapi.QueryFields("instance")
    names = [f["name"] for f in res["fields"]]
    for f in ("name", "status", "admin_state", "disk.sizes", "be/memory"):
        assert f in names, f
    res = rapi.QueryFields("node", fields=["name", "mtotal"])
    eq([(f["name"], f["kind"]) for f in res["fields"]], [("name", "text"), ("mtotal", "unit")], "node fields")


def t_not_found():
    try:
        rapi.GetInstance("no-such-instance.example.com")
    except client.GanetiApiError as err:
        eq(err.code, 404, "code")
    else:
        raise AssertionError("no error for an unknown instance")


for name, fn in sorted((k, v) for k, v in globals().items() if k.startswith("t_")):
    check(name[2:], fn)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
