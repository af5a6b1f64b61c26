'use strict';
// A gRPC client of ganeti-gateway written in JavaScript (Node), with
// @grpc/grpc-js and @grpc/proto-loader loading proto/ganeti/rapi/v2/*.proto
// as they are (no code generation). It:
//   1. reads the cluster with ClusterService.GetInfo, sending HTTP Basic
//      credentials as "authorization" metadata (and reports what the same
//      call without them gets: UNAUTHENTICATED, or OK from a server started
//      with --allow-anonymous-reads);
//   2. submits a job with the typed JobService.SubmitJob: OP_TAGS_SET on the
//      cluster, after an OP_TEST_DELAY of TEST_DELAY seconds when TEST_DELAY
//      is set (OP_TEST_DELAY is for users with the "admin" option: with
//      WRITER_USER and WRITER_PASSWORD, a user with "write" only, it first
//      checks that such a user's submission is refused with
//      PERMISSION_DENIED);
//   3. follows it with the JobService.WatchJob server stream until it ends,
//      rebuilding the job from the stream: the first message is the whole
//      job, the later ones only what changed (Job.log_serial_after);
//   4. reads the cluster's tags back (TagService.ListClusterTags);
//   5. with INSTANCE set, reads that instance (InstanceService.GetInstance)
//      and reports its typed parameters: beparams.maxmem (an int64 field,
//      a decimal string with longs: String), its hypervisor and which
//      member of the hvparams oneof is set, and the cluster's default
//      vcpus (ClusterInfo.beparams["default"].vcpus).
// On success it prints one JSON line starting with "RESULT " and exits 0.
//
// Environment: GRPC_TARGET (host:port), GRPC_CA_FILE (PEM certificate to
// trust; without it the connection is plaintext h2c, for --insecure
// servers), GRPC_SERVER_NAME (name to verify in the certificate, default
// localhost), RAPI_USER and RAPI_PASSWORD (a user with the "write" option,
// and "admin" with TEST_DELAY), TAG (the cluster tag to add), TEST_DELAY.
//
// Run from anywhere: node e2e/testdata/node-client/client.js

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const root = path.resolve(__dirname, '..', '..', '..');
const protoDir = path.join(root, 'proto');

function env(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (def !== undefined) return def;
    throw new Error(`${name} is not set`);
  }
  return v;
}

function loadServices() {
  const dir = path.join(protoDir, 'ganeti', 'rapi', 'v2');
  const files = fs.readdirSync(dir)
    .filter((f) => f.endsWith('.proto'))
    .map((f) => path.join('ganeti', 'rapi', 'v2', f));
  const def = protoLoader.loadSync(files, {
    includeDirs: [protoDir, path.join(root, 'third_party', 'googleapis')],
    keepCase: true, // field names as in the .proto (job_id, tags_set)
    longs: String, // int64 as decimal strings
    enums: String, // enum values by name
    defaults: false,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def).ganeti.rapi.v2;
}

// unary turns a callback-style unary method into a promise.
function unary(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 30000);
    client[method](request, metadata || new grpc.Metadata(), { deadline }, (err, res) =>
      err ? reject(err) : resolve(res));
  });
}

// merge applies a WatchJob message to the job rebuilt so far. The first
// message is the whole job; a later one (log_serial_after set) carries
// what changed: statuses and timestamps as they are now, per opcode the
// log entries after log_serial_after (appended), opresult and ops when
// they changed (else empty), no summary.
function merge(job, msg) {
  if (!job || msg.log_serial_after === undefined || msg.log_serial_after === null) return msg;
  const out = Object.assign({}, job, {
    status: msg.status,
    opstatus: msg.opstatus,
    received_ts: msg.received_ts,
    start_ts: msg.start_ts,
    end_ts: msg.end_ts,
  });
  out.oplog = (job.oplog || []).map((l, i) => ({
    entries: ((l && l.entries) || []).concat((((msg.oplog || [])[i] || {}).entries) || []),
  }));
  if ((msg.opresult || []).length > 0) out.opresult = msg.opresult;
  if ((msg.ops || []).length > 0) out.ops = msg.ops;
  return out;
}

// watch follows a job with the WatchJob server stream until it ends, and
// returns every message and the job they rebuild.
function watch(jobs, jobId, metadata) {
  return new Promise((resolve, reject) => {
    const updates = [];
    let job = null;
    const call = jobs.WatchJob({ job_id: jobId }, metadata, { deadline: new Date(Date.now() + 60000) });
    call.on('data', (msg) => {
      updates.push(msg);
      job = merge(job, msg);
    });
    call.on('error', reject);
    call.on('end', () => resolve({ updates, job }));
  });
}

const FINAL = ['JOB_STATUS_SUCCESS', 'JOB_STATUS_ERROR', 'JOB_STATUS_CANCELED'];

async function main() {
  const v2 = loadServices();
  const target = env('GRPC_TARGET');
  const caFile = env('GRPC_CA_FILE', '-');
  const user = env('RAPI_USER');
  const password = env('RAPI_PASSWORD');
  const tag = env('TAG');

  // The credentials go as metadata on each call (grpc-js attaches call
  // credentials over TLS only; explicit metadata works on both).
  const basicOf = (u, p) => 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64');
  const metadataOf = (value) => () => {
    const md = new grpc.Metadata();
    md.set('authorization', value);
    // GANETI_CLUSTER: the cluster of a gateway with several (--clusters).
    if (process.env.GANETI_CLUSTER) md.set('ganeti-cluster', process.env.GANETI_CLUSTER);
    return md;
  };
  const authed = metadataOf(basicOf(user, password));
  const options = {};
  let channel;
  if (caFile === '-') {
    channel = grpc.credentials.createInsecure();
  } else {
    options['grpc.ssl_target_name_override'] = env('GRPC_SERVER_NAME', 'localhost');
    channel = grpc.credentials.createSsl(fs.readFileSync(caFile));
  }
  const cluster = new v2.ClusterService(target, channel, options);
  const jobs = new v2.JobService(target, channel, options);
  const tags = new v2.TagService(target, channel, options);
  const instances = new v2.InstanceService(target, channel, options);

  // 1. GetInfo without credentials (refused unless anonymous reads are
  // allowed), then with them.
  let anonymous = 'OK';
  try {
    await unary(cluster, 'GetInfo', {});
  } catch (err) {
    anonymous = grpc.status[err.code] || String(err.code);
  }
  const info = await unary(cluster, 'GetInfo', {}, authed());

  // 2. SubmitJob: a short delay on the master if asked, then a cluster tag.
  const delay = process.env.TEST_DELAY;
  const job = { ops: [{ tags_set: { kind: 'TAG_KIND_CLUSTER', tags: [tag] } }] };
  if (delay) job.ops.unshift({ test_delay: { duration: Number(delay), on_master: true } });
  let writerRefused = 'not tried';
  if (delay && process.env.WRITER_USER) {
    const writer = metadataOf(basicOf(env('WRITER_USER'), env('WRITER_PASSWORD')));
    try {
      await unary(jobs, 'SubmitJob', job, writer());
      writerRefused = 'accepted';
    } catch (err) {
      writerRefused = grpc.status[err.code] || String(err.code);
    }
  }
  const submission = await unary(jobs, 'SubmitJob', job, authed());
  const jobId = submission.job_id;

  // 3. WatchJob, until the job has ended.
  const { updates, job: last } = await watch(jobs, jobId, authed());
  if (updates.length === 0) throw new Error(`WatchJob(${jobId}) sent nothing`);
  if (!FINAL.includes(last.status)) {
    throw new Error(`WatchJob(${jobId}) ended at ${last.status}`);
  }
  if (last.status !== 'JOB_STATUS_SUCCESS') {
    throw new Error(`job ${jobId} ended ${last.status}: ${JSON.stringify(last.opresult)}`);
  }

  // 4. The effect.
  const tagList = await unary(tags, 'ListClusterTags', {}, authed());
  if (!(tagList.tags || []).includes(tag)) {
    throw new Error(`cluster tags after job ${jobId}: ${JSON.stringify(tagList.tags)}`);
  }

  // 5. Typed parameters of an instance and of the cluster.
  let typed = null;
  const instanceName = process.env.INSTANCE;
  if (instanceName) {
    const inst = await unary(instances, 'GetInstance', { instance_name: instanceName }, authed());
    const be = inst.beparams || {};
    typed = {
      maxmem: be.maxmem,
      maxmem_type: typeof be.maxmem,
      custom_maxmem: (inst.custom_beparams || {}).maxmem,
      // (proto-loader names each proto3 optional's synthetic oneof "_<field>")
      beparams_keys: Object.keys(be).filter((k) => !k.startsWith('_')).sort(),
      hypervisor: inst.hypervisor,
      hvparams_member: (inst.hvparams || {}).hypervisor,
      cluster_vcpus: ((info.beparams || {}).default || {}).vcpus,
    };
  }

  const statuses = [];
  for (const u of updates) {
    if (statuses[statuses.length - 1] !== u.status) statuses.push(u.status);
  }
  console.log('RESULT ' + JSON.stringify({
    cluster: info.name,
    master: info.master,
    anonymous,
    writer_test_delay: writerRefused,
    job_id: jobId,
    updates: updates.length,
    statuses,
    opstatus: last.opstatus,
    summary: last.summary,
    log_entries: (last.oplog || []).reduce((n, l) => n + ((l && l.entries) || []).length, 0),
    tags: tagList.tags,
    typed,
  }));
  cluster.close();
  jobs.close();
  tags.close();
  instances.close();
}

main().catch((err) => {
  console.error('node client failed: ' + (err && err.stack ? err.stack : err));
  process.exit(1);
});
