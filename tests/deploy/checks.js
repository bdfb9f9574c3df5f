// The checks Kubernetes schemas cannot make, over one rendered kustomization.
//
// checkManifests(objects, context) returns a list of problems (strings, each naming the object);
// empty means the manifests are consistent. `context`:
//   secrets       Secret objects the manifests may reference (secret.example.yaml): the real
//                 Secret is never part of a kustomization
//   flags         Map flag name -> default (string), as the gateway binary reports them
//   pendingFlags  Set of flag names assumed but not yet in the binary: warnings, not errors
//   warnings      an array that receives warnings
//   promtool      path of promtool, or '' to skip `promtool check rules`
'use strict';

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const YAML = require('yaml');
const { podSpecOf, containersOf } = require('./kustomize');

const ENV_PREFIX = 'USERPILOT_GATEWAY_';
const GATEWAY_SERVICE = 'userpilot.gateway.v1.UserpilotGateway';

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

function checkReferences(where, pod, c, configMaps, secrets, problems) {
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
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
  const mount = (c.volumeMounts || []).find((m) => file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`));
  if (!mount) {
    problems.push(`${where}: --${flag}=${file} is not under any volumeMount`);
    return;
  }
  const rel = file.slice(mount.mountPath.replace(/\/$/, '').length + 1);
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
      ctx.warnings.push(`${where}: ${key} (${from}) sets --${flag}, which this gateway binary does not accept yet (listed as pending)`);
    } else {
      problems.push(`${where}: ${key} (${from}) is not a flag of the gateway: --${flag} is unknown to ${ctx.binary}`);
    }
  }
  for (const arg of [...(c.command || []).slice(1), ...(c.args || [])]) {
    const m = /^--?([a-z0-9_]+)(=|$)/.exec(arg);
    if (m && !ctx.flags.has(m[1]) && !ctx.pendingFlags.has(m[1])) problems.push(`${where}: argument ${arg} is not a flag of the gateway`);
  }
  const grace = durationSeconds(String(gatewaySetting('shutdown_grace', c, env, ctx.flags)));
  const termination = pod.terminationGracePeriodSeconds === undefined ? 30 : pod.terminationGracePeriodSeconds;
  const pause = preStopSeconds(c);
  if (Number.isNaN(grace)) {
    problems.push(`${where}: cannot read --shutdown_grace`);
  } else if (!(termination > grace + pause)) {
    problems.push(`${where}: terminationGracePeriodSeconds (${termination}) must exceed --shutdown_grace (${grace}s) plus the preStop pause (${pause}s)`);
  }
  // The ports the gateway listens on are the container ports that probes and Services use.
  for (const [flag, portName] of [['listen', 'grpc'], ['metrics_listen', 'metrics']]) {
    const address = String(gatewaySetting(flag, c, env, ctx.flags) || '');
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
  const keyFile = gatewaySetting('api_key_file', c, env, ctx.flags);
  const volumes = new Map((pod.volumes || []).map((v) => [v.name, v]));
  if (keyFile) {
    checkMountedFile(where, 'api_key_file', keyFile, c, volumes, ctx.secretsByName, problems);
  } else if (!(c.env || []).some((e) => e.name === 'USERPILOT_API_KEY' && e.valueFrom && e.valueFrom.secretKeyRef)) {
    problems.push(`${where}: the API key must come from a Secret: set --api_key_file to a mounted Secret, or USERPILOT_API_KEY from a secretKeyRef`);
  }
  if ((c.env || []).some((e) => e.name === 'USERPILOT_API_KEY' && e.value !== undefined)) {
    problems.push(`${where}: USERPILOT_API_KEY must not be a literal value`);
  }
  const readiness = c.readinessProbe && c.readinessProbe.grpc;
  if (!readiness || readiness.service !== GATEWAY_SERVICE) {
    problems.push(`${where}: readinessProbe must be a gRPC health check of ${GATEWAY_SERVICE}`);
  }
  if (!(c.livenessProbe && c.livenessProbe.grpc)) problems.push(`${where}: livenessProbe must be a gRPC health check`);
  if ((obj.spec.replicas === undefined ? 1 : obj.spec.replicas) < 2) problems.push(`${where}: needs at least 2 replicas`);
  if (!(pod.topologySpreadConstraints || []).length) problems.push(`${where}: needs topologySpreadConstraints`);
  found.gatewayEnv.push({ where, env, c });
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
      checkReferences(cw, pod, c, configMaps, ctx.secretsByName, problems);
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

function checkServices(objects, problems) {
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
      if (port.name === 'grpc' && port.appProtocol !== 'kubernetes.io/h2c') {
        problems.push(`${where}: the grpc port needs appProtocol kubernetes.io/h2c`);
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

// Shared-budget wiring: the Redis URL names a Service and port of this rendering, and the local
// fallback share (1/replicas) is never exceeded by the autoscaler.
function checkRedis(objects, found, problems) {
  for (const { where, env } of found.gatewayEnv) {
    const url = env.get(`${ENV_PREFIX}RATELIMIT_REDIS`);
    if (!url || !url.value) continue;
    const m = /^redis:\/\/([^/:]+)(?::(\d+))?(?:\/\d+)?$/.exec(url.value);
    if (!m) {
      problems.push(`${where}: ${ENV_PREFIX}RATELIMIT_REDIS=${url.value} is not redis://host:port[/db]`);
      continue;
    }
    const host = m[1].split('.')[0];
    const port = Number(m[2] || 6379);
    const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === host);
    if (!svc) problems.push(`${where}: ${ENV_PREFIX}RATELIMIT_REDIS names host ${m[1]}, but there is no Service ${host}`);
    else if (!(svc.spec.ports || []).some((p) => p.port === port)) problems.push(`${where}: Service ${host} has no port ${port}`);
    const replicas = Number((env.get(`${ENV_PREFIX}RATELIMIT_REPLICAS`) || {}).value || 1);
    for (const hpa of objects.filter((o) => o.kind === 'HorizontalPodAutoscaler')) {
      if (hpa.spec.maxReplicas > replicas) {
        problems.push(`${where}: ${ENV_PREFIX}RATELIMIT_REPLICAS (${replicas}) is below ${name(hpa)} maxReplicas (${hpa.spec.maxReplicas}): the Redis fallback would overspend the budget`);
      }
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
    flags: new Map(), pendingFlags: new Set(), warnings: [], promtool: '', binary: 'the gateway',
    ...context,
  };
  ctx.secretsByName = secretIndex(ctx.secrets || []);
  const problems = [];
  const found = { gateway: [], gatewayEnv: [] };
  for (const s of objects.filter((o) => o.kind === 'Secret')) {
    problems.push(`${name(s)}: a Secret is part of the rendering; keys belong in the cluster, never in this repository`);
  }
  checkWorkloads(objects, ctx, problems, found);
  if (!found.gateway.length) problems.push('no gateway container found (image userpilot-gateway)');
  checkServices(objects, problems);
  checkPolicies(objects, problems);
  checkMonitoring(objects, ctx, problems);
  checkRedis(objects, found, problems);
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

module.exports = { checkManifests, gatewayFlags, durationSeconds };
