// The checks pass on every shipped kustomization and catch each deliberately broken one in
// tests/deploy/broken (every fixture there must be named below). Run by ctest
// (deploy.validate_catches_broken) as `node --test`; needs UPGW_GATEWAY_BIN, UPGW_KUBECTL and
// NODE_PATH (set by tests/deploy/CMakeLists.txt).
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');
const test = require('node:test');
const { validateDir, loadContext, findKustomizations, checkRules, anchorOf } = require('./validate');
const { quantityBytes, podCount } = require('./checks');

const root = path.resolve(__dirname, '../..');
const k8s = path.join(root, 'deploy/kubernetes');
const ctx = loadContext({
  gateway: process.env.UPGW_GATEWAY_BIN,
  kubectl: process.env.UPGW_KUBECTL || 'kubectl',
  secrets: [path.join(k8s, 'secret.example.yaml'), path.join(k8s, 'overlays/mtls/secret.example.yaml')],
  pending: path.join(__dirname, 'pending-flags.txt'),
  promtool: process.env.UPGW_PROMTOOL || '',
  rules: path.join(root, 'deploy/prometheus/userpilot-gateway.rules.yml'),
});

const expectations = new Map();  // fixture -> [patterns]

function problemsOf(dir) {
  return validateDir(path.join(__dirname, 'broken', dir), ctx).problems;
}

// Declares that fixture `dir` is caught with a problem matching each pattern.
function caught(title, dir, ...patterns) {
  expectations.set(dir, patterns);
  test(title, () => {
    const problems = problemsOf(dir);
    for (const pattern of patterns) {
      assert.ok(problems.some((p) => pattern.test(p)),
        `expected a problem matching ${pattern} for ${dir}, got:\n  ${problems.join('\n  ')}`);
    }
  });
}

test('every shipped kustomization renders with kubectl kustomize and passes', () => {
  const found = findKustomizations(k8s);
  const dirs = found.filter((k) => !k.component).map((k) => path.relative(k8s, k.dir));
  assert.deepStrictEqual(dirs.sort(),
    ['base', 'overlays/durable-queue', 'overlays/eu', 'overlays/mtls', 'overlays/single-replica']);
  assert.deepStrictEqual(found.filter((k) => k.component).map((k) => path.relative(k8s, k.dir)),
    ['components/statefulset']);
  for (const dir of dirs) {
    const { problems, objects } = validateDir(path.join(k8s, dir), ctx);
    assert.deepStrictEqual(problems, [], dir);
    assert.ok(objects.some((o) => o.kind === 'ConfigMap' && /^userpilot-gateway-config-[a-z0-9]{10}$/.test(o.metadata.name)),
      `${dir}: kustomize names the generated ConfigMap with its content hash`);
  }
});

test('the base shares one budget among all its pods, and spools imports on disk', () => {
  const { objects } = validateDir(path.join(k8s, 'base'), ctx);
  const gateway = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'userpilot-gateway');
  const cm = objects.find((o) => o.kind === 'ConfigMap').data;
  assert.strictEqual(podCount(gateway, objects).total, 5);
  assert.strictEqual(cm.USERPILOT_GATEWAY_RATELIMIT_REDIS, 'redis://userpilot-gateway-redis:6379');
  assert.strictEqual(cm.USERPILOT_GATEWAY_RATELIMIT_REPLICAS, '5');
  const spool = gateway.spec.template.spec.volumes.find((v) => v.name === 'import-spool');
  assert.ok(spool.emptyDir && !spool.emptyDir.medium, 'a disk-backed emptyDir');
  assert.ok(quantityBytes(spool.emptyDir.sizeLimit) >= 8 * 50 * 1024 * 1024);
});

test('the mtls overlay uses the flags of issue 14, probing the health-only port; the durable-queue overlay the flags of issue 16', () => {
  for (const flag of ['tls_cert_file', 'tls_key_file', 'tls_client_ca_file', 'caller_tokens_file', 'caller_allow',
    'health_listen', 'max_connections', 'max_concurrent_streams']) {
    assert.ok(ctx.flags.has(flag), `--${flag} is a flag of the binary`);
    assert.ok(!ctx.pendingFlags.has(flag), `--${flag} is no longer pending`);
  }
  for (const flag of ['queue_dir', 'queue_max_bytes', 'queue_redis']) {
    assert.ok(ctx.flags.has(flag) && !ctx.pendingFlags.has(flag), flag);
  }
  const mtls = validateDir(path.join(k8s, 'overlays/mtls'), ctx);
  assert.deepStrictEqual(mtls.problems, []);
  assert.ok(!mtls.warnings.some((w) => /does not accept yet/.test(w)), mtls.warnings.join('\n'));
  const gateway = mtls.objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'userpilot-gateway');
  const c = gateway.spec.template.spec.containers.find((x) => x.name === 'gateway');
  const health = c.ports.find((p) => p.name === 'health');
  for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    assert.strictEqual(c[kind].grpc.port, health.containerPort, kind);
    assert.strictEqual(c[kind].tcpSocket, undefined, kind);
  }
  assert.strictEqual(c.readinessProbe.grpc.service, 'userpilot.gateway.v1.UserpilotGateway');
  const cm = mtls.objects.find((o) => o.kind === 'ConfigMap').data;
  assert.strictEqual(cm.USERPILOT_GATEWAY_HEALTH_LISTEN, `0.0.0.0:${health.containerPort}`);
  const queue = validateDir(path.join(k8s, 'overlays/durable-queue'), ctx);
  assert.ok(queue.objects.some((o) => o.kind === 'StatefulSet' && o.spec.volumeClaimTemplates[0].metadata.name === 'queue'));
  assert.ok(!queue.objects.some((o) => o.kind === 'Deployment' && o.metadata.name === 'userpilot-gateway'));
});

// Budgets: one key, one budget.
caught('replicas without a shared budget are caught', 'overspend-no-redis',
  /could overspend the Userpilot key: up to 5 gateway pods can run at once .*maxReplicas 4 \+ 1 during a rollout.*--ratelimit_redis is empty/);
caught('a fallback share smaller than the pods that can run is caught', 'overspend-fallback-share',
  /could overspend the Userpilot key while Redis is unreachable: --ratelimit_replicas=4 .* up to 5 pods can run at once/);
caught('an autoscaler maximum above --ratelimit_replicas is caught', 'overspend-hpa-max',
  /--ratelimit_replicas=5 .* up to 11 pods can run at once .*maxReplicas 10/);
caught('one replica with a rolling update (two pods at once) is caught', 'single-replica-rolling-update',
  /up to 2 gateway pods can run at once \(Deployment\/userpilot-gateway: replicas 1 \+ 1 during a rollout \(maxSurge\)\) without a shared budget/);
caught('two Redis pods (two budget stores) are caught', 'two-redis-pods',
  /Service userpilot-gateway-redis selects 2 Redis pods at once/);

// The import spool and the durable queue.
caught('a memory-backed spool is caught', 'spool-in-memory', /must hold 400 MiB: .* is memory-backed/);
caught('a spool smaller than the imports it admits is caught', 'spool-too-small',
  /must hold 800 MiB: --max_concurrent_imports 16 x --import_max_file_bytes 50 MiB, but volume import-spool \(emptyDir\) holds 512 MiB/,
  /requests 512 MiB of ephemeral-storage/);
caught('a spool on the read-only root filesystem is caught', 'spool-on-root-filesystem',
  /--import_spool_dir=\/tmp\) must hold 400 MiB: .* on the container's read-only root filesystem/);
caught('a durable queue on an emptyDir is caught', 'queue-on-emptydir',
  /the durable queue \(--queue_dir=\/var\/spool\/userpilot-gateway\/queue\) is on volume import-spool \(emptyDir\), which is deleted with the pod/);
caught('a queue larger than its volume is caught', 'queue-larger-than-volume',
  /--queue_max_bytes \(20480 MiB\) exceeds volume queue \(volumeClaimTemplate\) \(10240 MiB\)/);
caught('an autoscaler on the durable queue is caught', 'queue-with-autoscaler',
  /HorizontalPodAutoscaler\/userpilot-gateway scaling in would strand the removed pods' undelivered calls/);

// TLS and callers.
caught('a plaintext gRPC probe on the TLS port is caught', 'tls-grpc-probe',
  /readinessProbe is a gRPC probe, which the kubelet runs without TLS/,
  /Service\/userpilot-gateway: the grpc port serves TLS: appProtocol kubernetes.io\/h2c/);
caught('a secret file mounted with subPath (never rotated) is caught', 'tls-subpath',
  /--caller_tokens_file=\/var\/run\/secrets\/userpilot-gateway\/callers\/tokens is mounted with subPath/);
caught('an allow-list naming no RPC is caught', 'caller-allow-unknown-rpc',
  /--caller_allow: billing may call IdentifyUsers, which is not an RPC/);
caught('bearer tokens on a plaintext port are caught', 'tokens-without-tls',
  /--caller_tokens_file without --tls_cert_file: bearer tokens would cross the network in plaintext/);

// Consistency.
caught('a Service selector that matches no pods is caught', 'wrong-selector',
  /Service\/userpilot-gateway: selector .* matches no Deployment's pod labels/);
caught('a missing Secret key is caught', 'missing-secret-key',
  /volume api-key: Secret userpilot-gateway-api-key has no key apikey/,
  /--api_key_file=\/var\/run\/secrets\/userpilot\/api-key: Secret userpilot-gateway-api-key has no key apikey/);
caught('a ConfigMap variable that is not a gateway flag is caught', 'unknown-flag',
  /USERPILOT_GATEWAY_UPSTREAM_TIMEOUTS \(ConfigMap\/userpilot-gateway-config-\w{10}\) is not a flag of the gateway/);
caught('a drain longer than the termination grace period is caught', 'short-grace',
  /terminationGracePeriodSeconds \(35\) must exceed --shutdown_grace \(60s\)/);
caught('a gateway listening on another port than the probes and Service use is caught', 'wrong-listen-port',
  /--listen=0\.0\.0\.0:8080 does not listen on the container port named grpc/);
caught('a schema violation is caught', 'schema-error',
  /Deployment\/userpilot-gateway: schema: .*replicas must be integer/);
caught('an unknown field is caught, and so is the probe it was meant to be', 'unknown-field',
  /containers\[0\]\.readinesprobe: unknown field/,
  /readinessProbe must be a gRPC health check/);
caught('a Secret in the rendering is caught', 'secret-in-rendering',
  /Secret\/userpilot-gateway-api-key-\w+: a Secret is part of the rendering/);
if (ctx.promtool) {
  caught('an alert expression that does not parse is caught', 'bad-rule',
    /PrometheusRule\/userpilot-gateway: promtool check rules: .*parse error/s,
    /PrometheusRule\/userpilot-gateway: its groups differ from deploy\/prometheus's rules/);
} else {
  expectations.set('bad-rule', []);
  test('an alert expression that does not parse is caught', { skip: 'promtool not found' }, () => {});
}

test('every fixture in tests/deploy/broken has its test', () => {
  const fixtures = fs.readdirSync(path.join(__dirname, 'broken')).sort();
  assert.deepStrictEqual(fixtures, [...expectations.keys()].sort());
});

test('a kustomization kustomize refuses fails with its message', () => {
  const problems = validateDir(path.join(__dirname, 'no-such-kustomization'), ctx).problems;
  assert.match(problems.join('\n'), /^render: kubectl kustomize .*no-such-kustomization/);
});

test('the rules aggregate per (namespace, job) and every alert has its runbook section', () => {
  assert.deepStrictEqual(checkRules(path.join(root, 'deploy/prometheus/userpilot-gateway.rules.yml')), []);
  assert.strictEqual(anchorOf('UserpilotGatewayHighErrorRatio'), 'userpilotgatewayhigherrorratio');
  assert.strictEqual(anchorOf('Alerts and what to do'), 'alerts-and-what-to-do');
  // A rule aggregating by job alone, and an alert without a runbook, are reported.
  const dir = fs.mkdtempSync(path.join(require('os').tmpdir(), 'upgw-rules-'));
  try {
    fs.writeFileSync(path.join(dir, 'README.md'), '# Rules\n### SomeAlert\n');
    fs.writeFileSync(path.join(dir, 'rules.yml'), [
      'groups:', '  - name: g', '    rules:',
      '      - record: r', '        expr: sum by (job) (x)',
      '      - alert: SomeAlert', '        expr: sum by (namespace, job) (x) > 1',
      '        annotations:', '          runbook_url: https://example.com/README.md#somealert',
      '      - alert: OtherAlert', '        expr: sum by (namespace, job) (x) > 2', ''].join('\n'));
    const problems = checkRules(path.join(dir, 'rules.yml'));
    assert.strictEqual(problems.length, 2, problems.join('\n'));
    assert.match(problems[0], /r: `by \(job\)` must aggregate per deployment/);
    assert.match(problems[1], /OtherAlert: no runbook_url annotation/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the flags come from the binary', () => {
  for (const flag of ['listen', 'shutdown_grace', 'api_key_file', 'region', 'ratelimit_replicas', 'import_spool_dir']) {
    assert.ok(ctx.flags.has(flag), flag);
  }
  assert.strictEqual(ctx.flags.get('shutdown_grace'), '25s');
  assert.strictEqual(ctx.flags.get('max_concurrent_imports'), '8');
  assert.strictEqual(ctx.flags.get('import_max_file_bytes'), String(50 * 1024 * 1024));
});

test('quantities and pod counts follow Kubernetes', () => {
  assert.strictEqual(quantityBytes('512Mi'), 512 * 1024 * 1024);
  assert.strictEqual(quantityBytes('10Gi'), 10 * 1024 ** 3);
  assert.strictEqual(quantityBytes('1G'), 1e9);
  assert.strictEqual(quantityBytes('1500'), 1500);
  assert.ok(Number.isNaN(quantityBytes('lots')));
  const deployment = (spec) => ({ kind: 'Deployment', metadata: { name: 'd' }, spec });
  // maxSurge defaults to 25%, rounded up; Recreate adds nothing; a StatefulSet never surges.
  assert.strictEqual(podCount(deployment({ replicas: 3 }), []).total, 4);
  assert.strictEqual(podCount(deployment({ replicas: 8, strategy: { rollingUpdate: { maxSurge: '50%' } } }), []).total, 12);
  assert.strictEqual(podCount(deployment({ replicas: 1, strategy: { type: 'Recreate' } }), []).total, 1);
  assert.strictEqual(podCount({ kind: 'StatefulSet', metadata: { name: 's' }, spec: { replicas: 3 } }, []).total, 3);
  const hpa = { kind: 'HorizontalPodAutoscaler', metadata: { name: 'h' }, spec: { scaleTargetRef: { kind: 'Deployment', name: 'd' }, maxReplicas: 6 } };
  assert.strictEqual(podCount(deployment({ replicas: 2, strategy: { rollingUpdate: { maxSurge: 1 } } }), [hpa]).total, 7);
  assert.strictEqual(podCount({ kind: 'DaemonSet', metadata: { name: 'x' }, spec: {} }, []).total, Infinity);
});
