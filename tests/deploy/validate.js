#!/usr/bin/env node
// Renders kustomizations with real kustomize (`kubectl kustomize`) and checks them offline:
// Kubernetes schemas (kubernetes-models), unknown fields, and the checks of checks.js. Exit
// status 0 when every kustomization passes.
//
//   node validate.js --gateway=PATH [--kubectl=PATH] [--secret=FILE]... [--pending_flags=FILE]
//        [--promtool=PATH] [--rules=FILE] [--print] DIR...
//
// DIR             a kustomization, or a folder searched for every kustomization below it
//                 (Components are skipped: they are rendered through the overlays using them)
// --gateway       the userpilot-gateway binary, asked for its flags (--help)
// --kubectl       the kubectl that renders (default: kubectl on PATH)
// --secret        YAML files of Secrets the manifests may reference (the secret.example.yaml files)
// --pending_flags flags assumed by the manifests but not in the binary yet (one per line, #
//                 comments): reported as warnings instead of errors
// --promtool      run `promtool check rules` on PrometheusRules ('' or absent: skipped)
// --rules         deploy/prometheus's rules file: every PrometheusRule's groups must equal its
//                 groups (sync_rules.js copies them); its aggregations must keep `namespace` and
//                 `job`, and every alert needs a runbook_url naming a section of the README
//                 beside it
// --print         print each rendering as YAML
'use strict';

const fs = require('fs');
const { isDeepStrictEqual } = require('util');
const path = require('path');
const YAML = require('yaml');
const { render, parseDocuments } = require('./render');
const { validateObject } = require('./schema');
const { checkManifests, gatewayFlags } = require('./checks');

function parseArgs(argv) {
  const opts = {
    secrets: [], dirs: [], gateway: process.env.UPGW_GATEWAY_BIN || '', kubectl: process.env.UPGW_KUBECTL || 'kubectl',
    pending: '', promtool: '', rules: '', print: false,
  };
  for (const arg of argv) {
    const m = /^--([a-z_]+)(?:=(.*))?$/.exec(arg);
    if (!m) opts.dirs.push(arg);
    else if (m[1] === 'gateway') opts.gateway = m[2];
    else if (m[1] === 'kubectl') opts.kubectl = m[2];
    else if (m[1] === 'secret') opts.secrets.push(m[2]);
    else if (m[1] === 'pending_flags') opts.pending = m[2];
    else if (m[1] === 'promtool') opts.promtool = m[2] || '';
    else if (m[1] === 'rules') opts.rules = m[2] || '';
    else if (m[1] === 'print') opts.print = true;
    else throw new Error(`unknown option ${arg}`);
  }
  if (!opts.gateway) throw new Error('--gateway (or UPGW_GATEWAY_BIN) is required: the flags come from the binary');
  if (!opts.dirs.length) throw new Error('no kustomization directory given');
  return opts;
}

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

function kustomizationOf(dir) {
  const file = KUSTOMIZATION_FILES.map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  return file ? YAML.parse(fs.readFileSync(file, 'utf8')) || {} : undefined;
}

// Every kustomization at or below `dir`, depth first, in name order: [{dir, component}].
function findKustomizations(dir) {
  const found = [];
  const k = kustomizationOf(dir);
  if (k) found.push({ dir, component: k.kind === 'Component' });
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.isDirectory()) found.push(...findKustomizations(path.join(dir, entry.name)));
  }
  return found;
}

// Validates one kustomization directory; returns {problems, warnings, objects}.
function validateDir(dir, { flags, pendingFlags, secrets, promtool, binary, ruleGroups, kubectl, rpcs }) {
  const problems = [];
  const warnings = [];
  let objects;
  try {
    objects = render(dir, kubectl);
  } catch (e) {
    return { problems: [`render: ${e.message}`], warnings, objects: [] };
  }
  for (const obj of objects) {
    for (const e of validateObject(obj)) problems.push(`${obj.kind}/${obj.metadata.name}: ${e}`);
  }
  problems.push(...checkManifests(objects, { flags, pendingFlags, secrets, promtool, warnings, binary, rpcs }));
  if (ruleGroups) {
    for (const rule of objects.filter((o) => o.kind === 'PrometheusRule')) {
      if (!isDeepStrictEqual(rule.spec.groups, ruleGroups)) {
        problems.push(`PrometheusRule/${rule.metadata.name}: its groups differ from deploy/prometheus's rules: ` +
          'run `NODE_PATH=<build>/tests/deploy/npm/node_modules node tests/deploy/sync_rules.js`');
      }
    }
  }
  return { problems, warnings, objects };
}

// GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to dashes.
function anchorOf(heading) {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');
}

// deploy/prometheus's rules: per-deployment aggregation and a runbook section for every alert.
function checkRules(rulesFile) {
  const problems = [];
  const groups = YAML.parse(fs.readFileSync(rulesFile, 'utf8')).groups;
  const readme = path.join(path.dirname(rulesFile), 'README.md');
  const anchors = new Set(fs.existsSync(readme)
    ? [...fs.readFileSync(readme, 'utf8').matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1])) : []);
  for (const group of groups) {
    for (const rule of group.rules) {
      const where = `${path.basename(rulesFile)}: ${rule.alert || rule.record}`;
      // Every aggregation keeps the deployment's identity: a job name alone is shared by
      // deployments of the same name in different namespaces (and by every namespace's
      // ServiceMonitor with jobLabel app.kubernetes.io/name).
      for (const m of String(rule.expr).matchAll(/\b(by|without)\s*\(([^)]*)\)/g)) {
        const labels = m[2].split(',').map((l) => l.trim());
        if (m[1] === 'without' || !labels.includes('namespace') || !labels.includes('job')) {
          problems.push(`${where}: \`${m[0]}\` must aggregate per deployment: by (namespace, job, ...)`);
        }
      }
      if (!rule.alert) continue;
      const url = (rule.annotations || {}).runbook_url;
      const anchor = /#([^#]+)$/.exec(url || '');
      if (!url) problems.push(`${where}: no runbook_url annotation`);
      else if (!anchor || !anchors.has(anchor[1])) problems.push(`${where}: runbook_url ${url} names no section of ${readme}`);
      else if (anchor[1] !== anchorOf(rule.alert)) problems.push(`${where}: runbook_url ${url} names another alert's section`);
    }
  }
  return problems;
}

function loadContext(opts) {
  const flags = gatewayFlags(opts.gateway);
  // `flag  # note` per line: the note says which issue adds the flag.
  const pendingFlags = new Map();
  if (opts.pending && fs.existsSync(opts.pending)) {
    for (const line of fs.readFileSync(opts.pending, 'utf8').split('\n')) {
      const m = /^\s*([a-z0-9_]+)\s*(?:#\s*(.*))?$/.exec(line);
      if (m) pendingFlags.set(m[1], (m[2] || '').trim());
    }
  }
  const secrets = opts.secrets.flatMap((f) => parseDocuments(f)).filter((o) => o.kind === 'Secret');
  const ruleGroups = opts.rules && fs.existsSync(opts.rules) ? YAML.parse(fs.readFileSync(opts.rules, 'utf8')).groups : null;
  const proto = path.resolve(__dirname, '../../proto/userpilot/gateway/v1/gateway.proto');
  const rpcs = new Set([...fs.readFileSync(proto, 'utf8').matchAll(/^\s*rpc\s+(\w+)\s*\(/gm)].map((m) => m[1]));
  return {
    flags, pendingFlags, secrets, promtool: opts.promtool, binary: path.basename(opts.gateway), ruleGroups,
    kubectl: opts.kubectl || 'kubectl', rpcs,
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ctx = loadContext(opts);
  for (const flag of ctx.pendingFlags.keys()) {
    if (ctx.flags.has(flag)) {
      console.log(`WARNING: --${flag} is now accepted by the gateway: remove it from ${opts.pending}`);
    }
  }
  let failed = 0;
  let passed = 0;
  if (opts.rules) {
    const problems = checkRules(opts.rules);
    if (problems.length) {
      failed++;
      console.log(`FAIL ${opts.rules}: ${problems.length} problem(s)`);
      for (const p of problems) console.log(`  ${p}`);
    } else {
      passed++;
      console.log(`ok   ${opts.rules}: aggregations per (namespace, job), a runbook section per alert`);
    }
  }
  const dirs = opts.dirs.flatMap((d) => findKustomizations(d));
  if (!dirs.length) throw new Error(`no kustomization in ${opts.dirs.join(', ')}`);
  for (const { dir, component } of dirs) {
    if (component) {
      console.log(`--   ${dir}: a Component, rendered through the overlays that use it`);
      continue;
    }
    const { problems, warnings, objects } = validateDir(dir, ctx);
    if (opts.print) console.log(objects.map((o) => YAML.stringify(o)).join('---\n'));
    for (const w of warnings) console.log(`WARNING: ${dir}: ${w}`);
    if (problems.length) {
      failed++;
      console.log(`FAIL ${dir}: ${problems.length} problem(s)`);
      for (const p of problems) console.log(`  ${p}`);
    } else {
      passed++;
      const kinds = objects.map((o) => o.kind).join(', ');
      console.log(`ok   ${dir}: ${objects.length} objects (${kinds})`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    console.error(`validate: ${e.message}`);
    process.exit(2);
  }
}

module.exports = { validateDir, loadContext, findKustomizations, checkRules, anchorOf };
