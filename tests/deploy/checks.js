// The checks Kubernetes schemas cannot make, over one rendered kustomization.
//
// checkManifests(objects, context) returns a list of problems (strings, each naming the object);
// empty means the manifests are consistent. `context`:
//   secrets       Secret objects the manifests may reference (secret.example.yaml): the real
//                 Secret is never part of a kustomization
//   flags         Map flag name -> default (string), as the gateway binary reports them
//   pendingFlags  Map flag name -> note (the issue adding it) of flags assumed but not yet in the
//                 binary: warnings, not errors
//   warnings      an array that receives warnings
//   promtool      path of promtool, or '' to skip `promtool check rules`
//   rpcs          Set of the gateway's RPC names (gateway.proto), for --caller_allow
//
// Besides consistency (selectors, ports, keys, flags, drain time, security settings), the checks
// hold the two promises the manifests make about the one Userpilot API key:
//   budget  every gateway pod that can run at once (replicas or the autoscaler's maximum, plus
//           a rollout's surge) spends ONE shared budget: more than one pod needs
//           --ratelimit_redis naming a single Redis pod, and --ratelimit_replicas (each pod's
//           local share while Redis is unreachable) must cover them all;
//   spool   imports are spooled to a volume holding --max_concurrent_imports x
//           --import_max_file_bytes, on disk (not memory), and a durable queue (--queue_dir)
//           lives on a PersistentVolume at least --queue_max_bytes large.
'use strict';

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const YAML = require('yaml');
const { podSpecOf, containersOf } = require('./render');

const ENV_PREFIX = 'USERPILOT_GATEWAY_';
const GATEWAY_SERVICE = 'userpilot.gateway.v1.UserpilotGateway';
// Flags naming files the gateway reads secrets from: each must lie in a mounted Secret volume,
// mounted whole (no subPath), so that the kubelet updates it when the Secret changes.
const SECRET_FILE_FLAGS = ['api_key_file', 'tls_cert_file', 'tls_key_file', 'tls_client_ca_file', 'caller_tokens_file'];
const MiB = 1024 * 1024;

function name(obj) {
  return `${obj.kind}/${obj.metadata.name}`;
}

function labelsMatch(selector, labels) {
  const keys = Object.keys(selector || {});
  return keys.length > 0 && keys.every((k) => (labels || {})[k] === selector[k]);
}

// Selects with matchLabels only (matchExpressions would need more; the manifests do not use them).
function selectorLabels(selector, where, problems) {
  if (!selector) return {};
  if (selector.matchExpressions) problems.push(`${where}: matchExpressions are not checked; use matchLabels`);
  return selector.matchLabels || {};
}

// absl duration ("25s", "1m30s", "500ms", "1h") -> seconds.
function durationSeconds(text) {
  const units = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 };
  const re = /(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)/g;
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * units[m[2]];
    consumed += m[0].length;
  }
  if (text === '0') return 0;
  if (!consumed || consumed !== text.length) return NaN;
  return total;
}

// Kubernetes resource quantity ("512Mi", "10Gi", "1G", "1500") -> bytes; NaN when unreadable.
function quantityBytes(text) {
  const units = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, Ki: 1024, Mi: MiB, Gi: 1024 * MiB, Ti: 1024 * 1024 * MiB };
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|P)?$/.exec(String(text === undefined ? '' : text).trim());
  return m ? Number(m[1]) * units[m[2] || ''] : NaN;
}

function mib(bytes) {
  return `${Math.round(bytes / MiB)} MiB`;
}

// The environment a container gets from envFrom ConfigMaps and env values: name -> {value, from}.
function containerEnv(container, configMaps) {
  const env = new Map();
  for (const from of container.envFrom || []) {
    const cm = from.configMapRef && configMaps.get(from.configMapRef.name);
    if (!cm) continue;
    for (const [k, v] of Object.entries(cm.data || {})) {
      env.set(`${from.prefix || ''}${k}`, { value: v, from: `ConfigMap/${cm.metadata.name}` });
    }
  }
  for (const e of container.env || []) {
    const cmRef = e.valueFrom && e.valueFrom.configMapKeyRef;
    const cm = cmRef && configMaps.get(cmRef.name);
    const value = e.value !== undefined ? e.value : cm ? (cm.data || {})[cmRef.key] : undefined;
    env.set(e.name, { value, from: cm ? `ConfigMap/${cm.metadata.name}` : 'env' });
  }
  return env;
}

function isGatewayContainer(container, env) {
  return /(^|\/)userpilot-gateway(:|@|$)/.test(container.image || '') ||
    [...env.keys()].some((k) => k.startsWith(ENV_PREFIX));
}

// The gateway's setting of `flag` in this container: args win over the environment, which wins
// over the binary's default.
function gatewaySetting(flag, container, env, flags) {
  for (const arg of [...(container.command || []), ...(container.args || [])]) {
    const m = /^--?([a-z0-9_]+)=(.*)$/.exec(arg);
    if (m && m[1] === flag) return m[2];
  }
  const fromEnv = env.get(`${ENV_PREFIX}${flag.toUpperCase()}`);
  if (fromEnv && fromEnv.value) return fromEnv.value;
  return flags.get(flag);
}

function preStopSeconds(container) {
  const pre = container.lifecycle && container.lifecycle.preStop;
  if (!pre) return 0;
  if (pre.sleep) return Number(pre.sleep.seconds) || 0;
  const cmd = (pre.exec && pre.exec.command) || [];
  const at = cmd.findIndex((c) => /(^|\/)sleep$/.test(c));
  if (at >= 0) return durationSeconds(/^\d+$/.test(cmd[at + 1]) ? `${cmd[at + 1]}s` : cmd[at + 1]) || 0;
  return 0;
}

function portExists(container, port) {
  return (container.ports || []).some((p) => (typeof port === 'number' ? p.containerPort === port : p.name === port));
}

function checkContainerSecurity(where, pod, c, problems) {
  const sc = c.securityContext || {};
  const podSc = pod.securityContext || {};
  if (!(sc.runAsNonRoot === true || (podSc.runAsNonRoot === true && sc.runAsNonRoot !== false))) {
    problems.push(`${where}: runAsNonRoot must be true`);
  }
  if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem must be true`);
  if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation must be false`);
  const drop = (sc.capabilities && sc.capabilities.drop) || [];
  if (!drop.includes('ALL')) problems.push(`${where}: capabilities.drop must include ALL`);
  if ((sc.capabilities && sc.capabilities.add || []).length) problems.push(`${where}: adds capabilities`);
  const res = c.resources || {};
  for (const kind of ['requests', 'limits']) {
    for (const r of ['cpu', 'memory']) {
      if (!res[kind] || res[kind][r] === undefined) problems.push(`${where}: resources.${kind}.${r} is missing`);
    }
  }
  if (!c.image || /:latest$/.test(c.image) || !/[:@]/.test(c.image.replace(/^[^/]*:\d+\//, ''))) {
    problems.push(`${where}: image ${c.image} needs a pinned tag or digest`);
  }
}

function checkProbes(where, c, problems) {
  for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const probe = c[kind];
    if (!probe) continue;
    const port = probe.grpc ? probe.grpc.port
      : probe.httpGet ? probe.httpGet.port : probe.tcpSocket ? probe.tcpSocket.port : undefined;
    if (port !== undefined && !portExists(c, port)) {
      problems.push(`${where}: ${kind} port ${port} is not a port of the container`);
    }
  }
}

function checkReferences(where, obj, pod, c, configMaps, secrets, problems) {
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
  // A StatefulSet's volumeClaimTemplates are volumes of its pods too.
  for (const t of (obj.kind === 'StatefulSet' && obj.spec.volumeClaimTemplates) || []) volumes.set(t.metadata.name, t);
  for (const from of c.envFrom || []) {
    if (from.configMapRef && !configMaps.has(from.configMapRef.name) && !from.configMapRef.optional) {
      problems.push(`${where}: envFrom ConfigMap ${from.configMapRef.name} does not exist`);
    }
    if (from.secretRef && !secrets.has(from.secretRef.name) && !from.secretRef.optional) {
      problems.push(`${where}: envFrom Secret ${from.secretRef.name} does not exist`);
    }
  }
  for (const e of c.env || []) {
    const cmRef = e.valueFrom && e.valueFrom.configMapKeyRef;
    if (cmRef && !cmRef.optional) {
      const cm = configMaps.get(cmRef.name);
      if (!cm) problems.push(`${where}: env ${e.name}: ConfigMap ${cmRef.name} does not exist`);
      else if (!(cmRef.key in (cm.data || {}))) problems.push(`${where}: env ${e.name}: ConfigMap ${cmRef.name} has no key ${cmRef.key}`);
    }
    const sRef = e.valueFrom && e.valueFrom.secretKeyRef;
    if (sRef && !sRef.optional) {
      const s = secrets.get(sRef.name);
      if (!s) problems.push(`${where}: env ${e.name}: Secret ${sRef.name} does not exist`);
      else if (!s.keys.has(sRef.key)) problems.push(`${where}: env ${e.name}: Secret ${sRef.name} has no key ${sRef.key}`);
    }
  }
  for (const m of c.volumeMounts || []) {
    if (!volumes.has(m.name)) problems.push(`${where}: volumeMount ${m.name} names no volume`);
  }
  return volumes;
}

function checkVolumes(where, pod, configMaps, secrets, problems) {
  for (const v of pod.volumes || []) {
    if (v.secret) {
      const s = secrets.get(v.secret.secretName);
      if (!s) {
        if (!v.secret.optional) problems.push(`${where}: volume ${v.name}: Secret ${v.secret.secretName} does not exist`);
        continue;
      }
      for (const item of v.secret.items || []) {
        if (!s.keys.has(item.key)) problems.push(`${where}: volume ${v.name}: Secret ${v.secret.secretName} has no key ${item.key}`);
      }
    }
    if (v.configMap) {
      const cm = configMaps.get(v.configMap.name);
      if (!cm) {
        if (!v.configMap.optional) problems.push(`${where}: volume ${v.name}: ConfigMap ${v.configMap.name} does not exist`);
        continue;
      }
      for (const item of v.configMap.items || []) {
        if (!(item.key in (cm.data || {}))) problems.push(`${where}: volume ${v.name}: ConfigMap ${v.configMap.name} has no key ${item.key}`);
      }
    }
  }
}

// The file a flag names must be in a mounted Secret (or ConfigMap) volume that holds that key.
function checkMountedFile(where, flag, file, c, volumes, secrets, problems) {
  // A whole volume mounted at a folder holding the file, or one key mounted as the file (subPath).
  const dirOf = (m) => m.mountPath.replace(/\/$/, '');
  const mount = (c.volumeMounts || []).find((m) => file === dirOf(m) || file.startsWith(`${dirOf(m)}/`));
  if (!mount) {
    problems.push(`${where}: --${flag}=${file} is not under any volumeMount`);
    return;
  }
  const rel = file === dirOf(mount) ? (mount.subPath || '') : file.slice(dirOf(mount).length + 1);
  if (mount.subPath || mount.subPathExpr) {
    problems.push(`${where}: --${flag}=${file} is mounted with subPath: the kubelet never updates such files when the Secret changes; mount the whole volume`);
  }
  const volume = volumes.get(mount.name);
  if (!volume || !volume.secret) {
    problems.push(`${where}: --${flag}=${file} is not in a Secret volume`);
    return;
  }
  const items = volume.secret.items;
  const key = items ? (items.find((i) => i.path === rel) || {}).key : rel;
  const s = secrets.get(volume.secret.secretName);
  if (!key) problems.push(`${where}: --${flag}=${file}: volume ${mount.name} projects no file ${rel}`);
  else if (s && !s.keys.has(key)) problems.push(`${where}: --${flag}=${file}: Secret ${s.name} has no key ${key}`);
}

function checkGateway(where, obj, pod, c, env, ctx, problems, found) {
  found.gateway.push(obj);
  // Every USERPILOT_GATEWAY_* variable must be a flag the binary accepts: the gateway ignores
  // unknown ones silently, so a typo would go unnoticed in production.
  for (const [key, { from }] of env) {
    if (!key.startsWith(ENV_PREFIX)) continue;
    const flag = key.slice(ENV_PREFIX.length).toLowerCase();
    if (ctx.flags.has(flag)) continue;
    if (ctx.pendingFlags.has(flag)) {
      const why = ctx.pendingFlags.get(flag);
      ctx.warnings.push(`${where}: ${key} (${from}) sets --${flag}, which this gateway binary does not accept yet (pending${why ? `: ${why}` : ''})`);
    } else {
      problems.push(`${where}: ${key} (${from}) is not a flag of the gateway: --${flag} is unknown to ${ctx.binary}`);
    }
  }
  for (const arg of [...(c.command || []).slice(1), ...(c.args || [])]) {
    const m = /^--?([a-z0-9_]+)(=|$)/.exec(arg);
    if (m && !ctx.flags.has(m[1]) && !ctx.pendingFlags.has(m[1])) problems.push(`${where}: argument ${arg} is not a flag of the gateway`);
  }
  const setting = (flag) => gatewaySetting(flag, c, env, ctx.flags);
  const grace = durationSeconds(String(setting('shutdown_grace')));
  const termination = pod.terminationGracePeriodSeconds === undefined ? 30 : pod.terminationGracePeriodSeconds;
  const pause = preStopSeconds(c);
  if (Number.isNaN(grace)) {
    problems.push(`${where}: cannot read --shutdown_grace`);
  } else if (!(termination > grace + pause)) {
    problems.push(`${where}: terminationGracePeriodSeconds (${termination}) must exceed --shutdown_grace (${grace}s) plus the preStop pause (${pause}s)`);
  }
  // The ports the gateway listens on are the container ports that probes and Services use.
  for (const [flag, portName] of [['listen', 'grpc'], ['metrics_listen', 'metrics'], ['health_listen', 'health']]) {
    if (flag === 'health_listen' && !setting(flag)) continue;  // Optional.
    const address = String(setting(flag) || '');
    const m = /^(.*):(\d+)$/.exec(address);
    const port = (c.ports || []).find((p) => p.name === portName);
    if (!m) {
      problems.push(`${where}: cannot read --${flag} (${address})`);
    } else if (!port || port.containerPort !== Number(m[2])) {
      problems.push(`${where}: --${flag}=${address} does not listen on the container port named ${portName}`);
    } else if (/^(127\.|localhost$|\[::1\]$)/.test(m[1])) {
      problems.push(`${where}: --${flag}=${address} listens on loopback only: unreachable from the kubelet and the Service`);
    }
  }
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
  for (const flag of SECRET_FILE_FLAGS) {
    const file = setting(flag);
    if (file) checkMountedFile(where, flag, file, c, volumes, ctx.secretsByName, problems);
  }
  if (!setting('api_key_file') &&
      !(c.env || []).some((e) => e.name === 'USERPILOT_API_KEY' && e.valueFrom && e.valueFrom.secretKeyRef)) {
    problems.push(`${where}: the API key must come from a Secret: set --api_key_file to a mounted Secret, or USERPILOT_API_KEY from a secretKeyRef`);
  }
  if ((c.env || []).some((e) => e.name === 'USERPILOT_API_KEY' && e.value !== undefined)) {
    problems.push(`${where}: USERPILOT_API_KEY must not be a literal value`);
  }
  const tls = checkTls(where, c, setting, ctx, problems);
  found.tls = found.tls || tls;
  if (!(pod.topologySpreadConstraints || []).length) problems.push(`${where}: needs topologySpreadConstraints`);
  checkSpool(where, obj, pod, c, env, setting, problems);
  checkQueue(where, obj, pod, c, setting, problems);
  found.gatewayEnv.push({ where, obj, env, c, setting });
}

// TLS and caller authentication (--tls_*, --caller_*): consistent flags, probes the kubelet can
// run, and an allow-list naming real RPCs. Returns whether the gRPC port serves TLS.
function checkTls(where, c, setting, ctx, problems) {
  const cert = setting('tls_cert_file');
  const key = setting('tls_key_file');
  const tls = Boolean(cert || key);
  if (tls && !(cert && key)) problems.push(`${where}: --tls_cert_file and --tls_key_file go together`);
  if (setting('tls_client_ca_file') && !tls) {
    problems.push(`${where}: --tls_client_ca_file (mTLS) needs --tls_cert_file and --tls_key_file`);
  }
  if (setting('caller_tokens_file') && !tls) {
    problems.push(`${where}: --caller_tokens_file without --tls_cert_file: bearer tokens would cross the network in plaintext`);
  }
  const readiness = c.readinessProbe || {};
  // The plaintext health-only listener (--health_listen), where gRPC probes work with TLS on.
  const healthPort = (c.ports || []).find((p) => p.name === 'health');
  const onHealthPort = (probe) => Boolean(setting('health_listen') && healthPort && probe.grpc &&
    probe.grpc.port === healthPort.containerPort);
  if (tls) {
    // The kubelet's gRPC probes speak plaintext only: on a TLS port they always fail.
    for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      if (c[kind] && c[kind].grpc && !onHealthPort(c[kind])) {
        problems.push(`${where}: ${kind} is a gRPC probe, which the kubelet runs without TLS: it cannot pass on the TLS port (probe the --health_listen port, or use tcpSocket)`);
      }
    }
    if (!readiness.tcpSocket && !readiness.exec && !onHealthPort(readiness)) {
      problems.push(`${where}: readinessProbe must be a gRPC probe of the --health_listen port, check the TLS port (tcpSocket) or run a TLS client (exec)`);
    }
    if (onHealthPort(readiness) && readiness.grpc.service !== GATEWAY_SERVICE) {
      problems.push(`${where}: readinessProbe must be a gRPC health check of ${GATEWAY_SERVICE}`);
    }
  } else if (!readiness.grpc || readiness.grpc.service !== GATEWAY_SERVICE) {
    problems.push(`${where}: readinessProbe must be a gRPC health check of ${GATEWAY_SERVICE}`);
  }
  if (!tls && !(c.livenessProbe && c.livenessProbe.grpc)) problems.push(`${where}: livenessProbe must be a gRPC health check`);
  const allow = setting('caller_allow');
  if (allow) {
    for (const entry of String(allow).split(',')) {
      const m = /^\s*([^=\s]+)\s*=\s*(.+?)\s*$/.exec(entry);
      if (!m) {
        problems.push(`${where}: --caller_allow entry '${entry}' is not NAME=RPC|RPC`);
        continue;
      }
      for (const rpc of m[2].split('|').map((r) => r.trim())) {
        if (ctx.rpcs && !ctx.rpcs.has(rpc)) {
          problems.push(`${where}: --caller_allow: ${m[1]} may call ${rpc}, which is not an RPC of ${GATEWAY_SERVICE}`);
        }
      }
    }
  }
  return tls;
}

// The volume that holds `dir` inside container c: the deepest mount containing it, described as
// {mount, volume, kind, memory, size (bytes or NaN), claim} or undefined (the root filesystem).
function volumeAt(dir, obj, pod, c) {
  const norm = (p) => p.replace(/\/+$/, '') || '/';
  const mount = (c.volumeMounts || [])
    .filter((m) => !m.subPath && (norm(dir) === norm(m.mountPath) || norm(dir).startsWith(`${norm(m.mountPath)}/`)))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return undefined;
  const volume = (pod.volumes || []).find((v) => v.name === mount.name);
  const storageOf = (claimSpec) => quantityBytes((((claimSpec || {}).resources || {}).requests || {}).storage);
  if (!volume) {
    const template = obj.kind === 'StatefulSet' &&
      (obj.spec.volumeClaimTemplates || []).find((t) => t.metadata && t.metadata.name === mount.name);
    return template ? { mount, kind: 'volumeClaimTemplate', size: storageOf(template.spec) } : { mount, kind: 'missing' };
  }
  if (volume.emptyDir) {
    return { mount, volume, kind: 'emptyDir', memory: volume.emptyDir.medium === 'Memory', size: quantityBytes(volume.emptyDir.sizeLimit) };
  }
  if (volume.ephemeral) {
    return { mount, volume, kind: 'ephemeral', size: storageOf((volume.ephemeral.volumeClaimTemplate || {}).spec) };
  }
  if (volume.persistentVolumeClaim) return { mount, volume, kind: 'persistentVolumeClaim', claim: volume.persistentVolumeClaim.claimName };
  return { mount, volume, kind: Object.keys(volume).find((k) => k !== 'name') || 'unknown' };
}

function describeVolume(v) {
  return `volume ${v.mount.name} (${v.kind}${v.memory ? ', medium Memory' : ''})`;
}

// ImportData spools every file before uploading it: the spool directory must hold the largest
// files of every import the gateway admits at once, on disk.
function checkSpool(where, obj, pod, c, env, setting, problems) {
  const tmpdir = (env.get('TMPDIR') || {}).value;
  const dir = setting('import_spool_dir') || tmpdir || '/tmp';
  const imports = Number(setting('max_concurrent_imports'));
  const fileBytes = Number(setting('import_max_file_bytes'));
  if (!(imports > 0 && fileBytes > 0)) {
    problems.push(`${where}: cannot read --max_concurrent_imports (${imports}) and --import_max_file_bytes (${fileBytes})`);
    return;
  }
  const need = imports * fileBytes;
  const what = `the import spool (--import_spool_dir=${dir}) must hold ${mib(need)}: --max_concurrent_imports ${imports} x --import_max_file_bytes ${mib(fileBytes)}`;
  const v = volumeAt(dir, obj, pod, c);
  if (!v) {
    const readOnly = (c.securityContext || {}).readOnlyRootFilesystem === true;
    problems.push(`${where}: ${what}, but it is on the container's ${readOnly ? 'read-only ' : ''}root filesystem: mount a volume there`);
    return;
  }
  if (v.memory) {
    problems.push(`${where}: ${what}, but ${describeVolume(v)} is memory-backed: spooled files would count against the container's memory limit; use a disk-backed emptyDir`);
    return;
  }
  if (!['emptyDir', 'ephemeral', 'volumeClaimTemplate', 'persistentVolumeClaim'].includes(v.kind)) {
    problems.push(`${where}: ${what}, but ${describeVolume(v)} is not a writable scratch volume`);
    return;
  }
  if (v.kind !== 'persistentVolumeClaim' && !(v.size >= need)) {
    problems.push(`${where}: ${what}, but ${describeVolume(v)} holds ${Number.isNaN(v.size) ? 'no stated size (set sizeLimit)' : mib(v.size)}; enlarge it or lower the two flags`);
  }
  if (v.kind === 'emptyDir') {
    const requested = quantityBytes((((c.resources || {}).requests) || {})['ephemeral-storage']);
    if (!(requested >= need)) {
      problems.push(`${where}: ${what} on the node's disk, but the container requests ${Number.isNaN(requested) ? 'no' : mib(requested) + ' of'} ephemeral-storage: the scheduler may place it on a node without room`);
    }
  }
}

// The durable queue (--queue_dir) must outlive the pod: a per-pod PersistentVolume at least
// --queue_max_bytes large, and no autoscaler stranding a removed pod's undelivered calls.
function checkQueue(where, obj, pod, c, setting, problems) {
  const dir = setting('queue_dir');
  if (!dir) return;
  const v = volumeAt(dir, obj, pod, c);
  if (!v) {
    problems.push(`${where}: the durable queue (--queue_dir=${dir}) is on the container's root filesystem: acknowledged calls would be lost with the container; use a StatefulSet volumeClaimTemplate`);
    return;
  }
  if (v.kind !== 'volumeClaimTemplate' && v.kind !== 'persistentVolumeClaim') {
    problems.push(`${where}: the durable queue (--queue_dir=${dir}) is on ${describeVolume(v)}, which is deleted with the pod: acknowledged calls would be lost; use a StatefulSet volumeClaimTemplate`);
    return;
  }
  const maxBytes = Number(setting('queue_max_bytes'));
  if (!(maxBytes > 0)) {
    problems.push(`${where}: set --queue_max_bytes to what ${describeVolume(v)} holds, so a full queue answers RESOURCE_EXHAUSTED instead of failing writes`);
  } else if (v.size !== undefined && !Number.isNaN(v.size) && maxBytes > v.size) {
    problems.push(`${where}: --queue_max_bytes (${mib(maxBytes)}) exceeds ${describeVolume(v)} (${mib(v.size)}): the disk fills before the queue reports itself full`);
  }
}

// How many pods of a workload can run at once: replicas or its autoscaler's maximum, plus the
// extra pods of a rolling update (maxSurge, Deployments only: a StatefulSet replaces pods one by
// one, Recreate stops every old pod first).
function podCount(obj, objects) {
  const hpa = objects.find((o) => o.kind === 'HorizontalPodAutoscaler' && o.spec.scaleTargetRef &&
    o.spec.scaleTargetRef.kind === obj.kind && o.spec.scaleTargetRef.name === obj.metadata.name);
  if (obj.kind === 'Pod') return { total: 1, hpa, text: 'one Pod' };
  const replicas = obj.spec.replicas === undefined ? 1 : Number(obj.spec.replicas);
  const most = Math.max(replicas, hpa ? hpa.spec.maxReplicas : 0);
  let surge = 0;
  if (obj.kind === 'Deployment') {
    const strategy = obj.spec.strategy || {};
    if ((strategy.type || 'RollingUpdate') === 'RollingUpdate') {
      const value = ((strategy.rollingUpdate || {}).maxSurge === undefined) ? '25%' : strategy.rollingUpdate.maxSurge;
      const pct = /^(\d+)%$/.exec(String(value));
      surge = pct ? Math.ceil((Number(pct[1]) * most) / 100) : Number(value);
    }
  } else if (obj.kind !== 'StatefulSet') {
    return { total: Infinity, hpa, text: `a ${obj.kind}, whose pod count the manifests do not bound` };
  }
  const parts = [hpa ? `${name(hpa)} maxReplicas ${hpa.spec.maxReplicas}` : `replicas ${replicas}`];
  if (surge) parts.push(`+ ${surge} during a rollout (maxSurge)`);
  return { total: most + surge, hpa, text: parts.join(' ') };
}

// The Service a redis://host:port URL names, and the pods behind it: exactly one Redis pod, or
// the replicas would not share one store.
function checkRedisUrl(where, flag, url, objects, problems) {
  const m = /^redis:\/\/([^/:]+)(?::(\d+))?(?:\/\d+)?$/.exec(url);
  if (!m) {
    problems.push(`${where}: --${flag}=${url} is not redis://host:port[/db]`);
    return;
  }
  const host = m[1].split('.')[0];
  const port = Number(m[2] || 6379);
  const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === host);
  if (!svc) {
    problems.push(`${where}: --${flag} names host ${m[1]}, but there is no Service ${host}`);
    return;
  }
  if (!(svc.spec.ports || []).some((p) => p.port === port)) problems.push(`${where}: Service ${host} has no port ${port}`);
  const counts = selectedWorkloads(objects, svc.spec.selector).map((w) => [w, podCount(w, objects)]);
  const total = counts.reduce((sum, [, n]) => sum + n.total, 0);
  if (total !== 1) {
    problems.push(`${where}: --${flag}: Service ${host} selects ${total === Infinity ? 'an unbounded number of' : total} Redis pods at once ` +
      `(${counts.map(([w, n]) => `${name(w)}: ${n.text}`).join('; ') || 'none'}): the gateways must share ONE Redis (replicas 1, strategy Recreate)`);
  }
}

// One Userpilot API key is one budget, however many gateway pods spend it.
function checkBudget(objects, found, problems) {
  const gateways = found.gatewayEnv;
  if (!gateways.length) return;
  const counts = gateways.map((g) => podCount(g.obj, objects));
  const total = counts.reduce((sum, n) => sum + n.total, 0);
  if (Number.isNaN(total)) return;  // An unreadable replica count: the schema check says so.
  const how = gateways.map((g, i) => `${name(g.obj)}: ${counts[i].text}`).join('; ');
  const urls = new Set(gateways.map((g) => g.setting('ratelimit_redis') || ''));
  for (const g of gateways) {
    const redis = g.setting('ratelimit_redis');
    if (!redis) {
      if (total > 1) {
        problems.push(`${g.where}: could overspend the Userpilot key: up to ${total === Infinity ? 'any number of' : total} gateway pods can run at once (${how}) ` +
          `without a shared budget (--ratelimit_redis is empty), each spending the key's whole budget. Share it through Redis, or run one pod with no autoscaler and strategy Recreate`);
      }
      continue;
    }
    checkRedisUrl(g.where, 'ratelimit_redis', redis, objects, problems);
    if (urls.size > 1) problems.push(`${g.where}: the gateway workloads name different Redis URLs (${[...urls].join(', ')}): one key, one budget store`);
    const replicas = Number(g.setting('ratelimit_replicas'));
    if (g.setting('ratelimit_redis_fallback') === 'local' && !(replicas >= total)) {
      problems.push(`${g.where}: could overspend the Userpilot key while Redis is unreachable: --ratelimit_replicas=${g.setting('ratelimit_replicas')} ` +
        `gives each pod 1/${g.setting('ratelimit_replicas')} of every budget, but up to ${total} pods can run at once (${how}); set it to at least ${total}`);
    }
  }
  for (const g of gateways) {
    const queueRedis = g.setting('queue_redis');
    if (queueRedis) checkRedisUrl(g.where, 'queue_redis', queueRedis, objects, problems);
    if (g.setting('queue_dir')) {
      const n = podCount(g.obj, objects);
      if (n.hpa) problems.push(`${g.where}: the durable queue (--queue_dir) is per pod: ${name(n.hpa)} scaling in would strand the removed pods' undelivered calls on their volumes`);
    }
  }
}

function checkWorkloads(objects, ctx, problems, found) {
  const configMaps = new Map(objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata.name, o]));
  for (const obj of objects) {
    const pod = podSpecOf(obj);
    if (!pod) continue;
    const where = name(obj);
    const sel = selectorLabels(obj.spec.selector, where, problems);
    const podLabels = (obj.spec.template && obj.spec.template.metadata && obj.spec.template.metadata.labels) || {};
    if (obj.kind !== 'Pod' && !labelsMatch(sel, podLabels)) {
      problems.push(`${where}: spec.selector does not match the pod template's labels`);
    }
    checkVolumes(where, pod, configMaps, ctx.secretsByName, problems);
    for (const c of containersOf(pod)) {
      const cw = `${where} container ${c.name}`;
      checkContainerSecurity(cw, pod, c, problems);
      checkProbes(cw, c, problems);
      checkReferences(cw, obj, pod, c, configMaps, ctx.secretsByName, problems);
      const env = containerEnv(c, configMaps);
      if (isGatewayContainer(c, env)) checkGateway(cw, obj, pod, c, env, ctx, problems, found);
    }
  }
}

// Workloads whose pods `selector` (plain labels) selects.
function selectedWorkloads(objects, selector) {
  return objects.filter((o) => podSpecOf(o) && o.kind !== 'Pod' &&
    labelsMatch(selector, (o.spec.template.metadata || {}).labels));
}

function checkServices(objects, found, problems) {
  for (const svc of objects.filter((o) => o.kind === 'Service')) {
    const where = name(svc);
    const targets = selectedWorkloads(objects, svc.spec.selector);
    if (!targets.length) {
      problems.push(`${where}: selector ${JSON.stringify(svc.spec.selector || {})} matches no Deployment's pod labels`);
      continue;
    }
    for (const port of svc.spec.ports || []) {
      const target = port.targetPort === undefined ? port.port : port.targetPort;
      for (const w of targets) {
        if (!containersOf(podSpecOf(w)).some((c) => portExists(c, target))) {
          problems.push(`${where}: port ${port.name || port.port} targets ${target}, which is not a container port of ${name(w)}`);
        }
      }
      if (port.name === 'grpc' && !found.tls && port.appProtocol !== 'kubernetes.io/h2c') {
        problems.push(`${where}: the grpc port needs appProtocol kubernetes.io/h2c (plaintext HTTP/2)`);
      }
      if (port.name === 'grpc' && found.tls && port.appProtocol === 'kubernetes.io/h2c') {
        problems.push(`${where}: the grpc port serves TLS: appProtocol kubernetes.io/h2c (plaintext HTTP/2) would mislead meshes and load balancers`);
      }
    }
  }
}

function checkPolicies(objects, problems) {
  for (const obj of objects) {
    const where = name(obj);
    if (obj.kind === 'PodDisruptionBudget' || obj.kind === 'NetworkPolicy') {
      const sel = obj.kind === 'NetworkPolicy' ? obj.spec.podSelector : obj.spec.selector;
      const targets = selectedWorkloads(objects, selectorLabels(sel, where, problems));
      if (!targets.length) problems.push(`${where}: selector matches no Deployment's pod labels`);
      if (obj.kind === 'NetworkPolicy') {
        for (const rule of obj.spec.ingress || []) {
          for (const p of rule.ports || []) {
            if (!targets.some((w) => containersOf(podSpecOf(w)).some((c) => portExists(c, p.port)))) {
              problems.push(`${where}: ingress port ${p.port} is not a container port of the selected pods`);
            }
          }
        }
      }
    }
    if (obj.kind === 'HorizontalPodAutoscaler') {
      const ref = obj.spec.scaleTargetRef;
      const target = objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name);
      if (!target) problems.push(`${where}: scaleTargetRef ${ref.kind}/${ref.name} does not exist`);
      if ((obj.spec.minReplicas || 1) < 2) problems.push(`${where}: minReplicas must be at least 2`);
      if (obj.spec.maxReplicas < (obj.spec.minReplicas || 1)) problems.push(`${where}: maxReplicas < minReplicas`);
    }
  }
}

function checkMonitoring(objects, ctx, problems) {
  const services = objects.filter((o) => o.kind === 'Service');
  for (const sm of objects.filter((o) => o.kind === 'ServiceMonitor')) {
    const where = name(sm);
    const targets = services.filter((s) => labelsMatch(selectorLabels(sm.spec.selector, where, problems), s.metadata.labels));
    if (!targets.length) problems.push(`${where}: selector matches no Service's labels`);
    for (const ep of sm.spec.endpoints || []) {
      for (const s of targets) {
        if (!(s.spec.ports || []).some((p) => p.name === ep.port)) {
          problems.push(`${where}: endpoint port ${ep.port} is not a port of ${name(s)}`);
        }
      }
    }
  }
  if (!ctx.promtool) return;
  for (const rule of objects.filter((o) => o.kind === 'PrometheusRule')) {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'upgw-rules-')), 'rules.yaml');
    fs.writeFileSync(file, YAML.stringify(rule.spec));
    try {
      execFileSync(ctx.promtool, ['check', 'rules', file], { stdio: 'pipe' });
    } catch (e) {
      problems.push(`${name(rule)}: promtool check rules: ${(e.stdout || '').toString()}${(e.stderr || '').toString()}`.trim());
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  }
}

// Secrets as objects -> Map name -> {name, keys}.
function secretIndex(secrets) {
  return new Map(secrets.map((s) => [s.metadata.name, {
    name: s.metadata.name,
    keys: new Set([...Object.keys(s.data || {}), ...Object.keys(s.stringData || {})]),
  }]));
}

function checkManifests(objects, context) {
  const ctx = {
    flags: new Map(), pendingFlags: new Map(), warnings: [], promtool: '', binary: 'the gateway',
    ...context,
  };
  ctx.secretsByName = secretIndex(ctx.secrets || []);
  const problems = [];
  const found = { gateway: [], gatewayEnv: [], tls: false };
  for (const s of objects.filter((o) => o.kind === 'Secret')) {
    problems.push(`${name(s)}: a Secret is part of the rendering; keys belong in the cluster, never in this repository`);
  }
  checkWorkloads(objects, ctx, problems, found);
  if (!found.gateway.length) problems.push('no gateway container found (image userpilot-gateway)');
  checkServices(objects, found, problems);
  checkPolicies(objects, problems);
  checkMonitoring(objects, ctx, problems);
  checkBudget(objects, found, problems);
  return problems;
}

// Flags and defaults from `userpilot-gateway --help` (exit status 1 is absl's for --help).
function gatewayFlags(binary) {
  let out;
  try {
    out = execFileSync(binary, ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    out = `${e.stdout || ''}${e.stderr || ''}`;
  }
  const flags = new Map();
  const blocks = out.split(/\n(?= {4}--)/);
  for (const block of blocks) {
    const m = /^ {4}--([a-z0-9_]+) \(/.exec(block);
    if (!m) continue;
    const d = /default: ("(?:[^"\\]|\\.)*"|[^;\s]*);/.exec(block);
    flags.set(m[1], d ? d[1].replace(/^"(.*)"$/, '$1') : undefined);
  }
  if (!flags.size) throw new Error(`${binary} --help listed no flags:\n${out}`);
  return flags;
}

module.exports = { checkManifests, gatewayFlags, durationSeconds, quantityBytes, podCount };
