// The checks pass on the shipped kustomizations and catch deliberately broken ones.
// Run by ctest (deploy.validate_catches_broken) as `node --test`; needs UPGW_GATEWAY_BIN and
// NODE_PATH (set by tests/deploy/CMakeLists.txt).
'use strict';

const assert = require('assert');
const path = require('path');
const test = require('node:test');
const { validateDir, loadContext } = require('./validate');
const { strategicMerge, configMapHash } = require('./kustomize');

const root = path.resolve(__dirname, '../..');
const ctx = loadContext({
  gateway: process.env.UPGW_GATEWAY_BIN,
  secrets: [path.join(root, 'deploy/kubernetes/secret.example.yaml')],
  pending: path.join(__dirname, 'pending-flags.txt'),
  promtool: process.env.UPGW_PROMTOOL || '',
  rules: path.join(root, 'deploy/prometheus/userpilot-gateway.rules.yml'),
});

function problemsOf(dir) {
  return validateDir(path.join(__dirname, 'broken', dir), ctx).problems;
}

function assertCaught(dir, pattern) {
  const problems = problemsOf(dir);
  assert.ok(problems.some((p) => pattern.test(p)),
    `expected a problem matching ${pattern} for ${dir}, got:\n  ${problems.join('\n  ')}`);
}

test('the shipped base and overlays pass', () => {
  for (const dir of ['base', 'overlays/eu', 'overlays/redis-shared-budget']) {
    const { problems } = validateDir(path.join(root, 'deploy/kubernetes', dir), ctx);
    assert.deepStrictEqual(problems, [], dir);
  }
});

test('a Service selector that matches no pods is caught', () => {
  assertCaught('wrong-selector', /Service\/userpilot-gateway: selector .* matches no Deployment's pod labels/);
});

test('a missing Secret key is caught', () => {
  assertCaught('missing-secret-key', /volume api-key: Secret userpilot-gateway-api-key has no key apikey/);
  assertCaught('missing-secret-key', /--api_key_file=\/var\/run\/secrets\/userpilot\/api-key: Secret userpilot-gateway-api-key has no key apikey/);
});

test('a ConfigMap variable that is not a gateway flag is caught', () => {
  assertCaught('unknown-flag', /USERPILOT_GATEWAY_UPSTREAM_TIMEOUTS \(ConfigMap\/userpilot-gateway-config-\w+\) is not a flag of the gateway/);
});

test('a drain longer than the termination grace period is caught', () => {
  assertCaught('short-grace', /terminationGracePeriodSeconds \(35\) must exceed --shutdown_grace \(60s\)/);
});

test('a gateway listening on another port than the probes and Service use is caught', () => {
  assertCaught('wrong-listen-port', /--listen=0\.0\.0\.0:8080 does not listen on the container port named grpc/);
});

test('a schema violation is caught', () => {
  assertCaught('schema-error', /Deployment\/userpilot-gateway: schema: .*replicas must be integer/);
});

test('an unknown field is caught, and so is the probe it was meant to be', () => {
  assertCaught('unknown-field', /containers\[0\]\.readinesprobe: unknown field/);
  assertCaught('unknown-field', /readinessProbe must be a gRPC health check/);
});

test('the example Secret in a kustomization is caught', () => {
  assertCaught('example-secret-included', /the example Secret must not be part of a kustomization/);
  assertCaught('example-secret-included', /Secret\/userpilot-gateway-api-key: a Secret is part of the rendering/);
});

test('an alert expression that does not parse is caught', { skip: !ctx.promtool && 'promtool not found' }, () => {
  assertCaught('bad-rule', /PrometheusRule\/userpilot-gateway: promtool check rules: .*parse error/s);
});

test('a PrometheusRule that drifted from deploy/prometheus is caught', { skip: !ctx.ruleGroups && 'no rules file' }, () => {
  assertCaught('bad-rule', /PrometheusRule\/userpilot-gateway: its groups differ from deploy\/prometheus's rules/);
});

test('the flags come from the binary', () => {
  for (const flag of ['listen', 'shutdown_grace', 'api_key_file', 'region']) assert.ok(ctx.flags.has(flag), flag);
  assert.strictEqual(ctx.flags.get('shutdown_grace'), '25s');
});

test('strategic merge follows merge keys and null deletes', () => {
  const target = { containers: [{ name: 'a', image: 'x', env: [{ name: 'K', value: '1' }] }], keep: 1, drop: 2 };
  strategicMerge(target, { containers: [{ name: 'a', env: [{ name: 'L', value: '2' }] }, { name: 'b' }], drop: null });
  assert.deepStrictEqual(target, {
    containers: [{ name: 'a', image: 'x', env: [{ name: 'K', value: '1' }, { name: 'L', value: '2' }] }, { name: 'b' }],
    keep: 1,
  });
});

test('ConfigMap hash suffixes follow kustomize', () => {
  // The value `kustomize build` gives for this ConfigMap (api/hasher's own test case).
  assert.strictEqual(configMapHash({ metadata: { name: '' }, data: {} }), '42745tchd9');
});
