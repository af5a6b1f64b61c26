#!/usr/bin/python3
# A short session of the official RAPI client (Debian's python3-ganeti-rapi)
# through a reverse proxy: reads, a write, a job wait (GET /2/jobs/{id}/wait,
# a GET with a JSON body) and the job's end. Prints one line starting with
# "RESULT " (JSON) and exits 0, or raises.
#
# Environment: RAPI_HOST, RAPI_PORT (the proxy, TLS verified against
# RAPI_CAFILE), RAPI_USER and RAPI_PASSWORD (a user with the write option),
# TAG (the cluster tag to add).
import json
import os

from ganeti.rapi import client

rapi = client.GanetiRapiClient(
    os.environ["RAPI_HOST"], port=int(os.environ["RAPI_PORT"]),
    username=os.environ["RAPI_USER"], password=os.environ["RAPI_PASSWORD"],
    curl_config_fn=client.GenericCurlConfig(cafile=os.environ["RAPI_CAFILE"]))
tag = os.environ["TAG"]

info = rapi.GetInfo()
nodes = rapi.GetNodes()
instances = rapi.GetInstances(bulk=True)
job = int(rapi.AddClusterTags([tag]))
change = rapi.WaitForJobChange(job, ["status"], None, None)
done = rapi.WaitForJobCompletion(job, period=1, retries=30)
print("RESULT " + json.dumps({
    "cluster": info["name"],
    "nodes": len(nodes),
    "instances": len(instances),
    "job_id": job,
    "wait_fields": change.get("job_info") if change else None,
    "completed": done,
    "status": rapi.GetJobStatus(job)["status"],
    "tags": rapi.GetClusterTags(),
}))
