#!/usr/bin/env node
// Renders kustomizations offline and checks them: Kubernetes schemas (kubernetes-models), unknown
// fields, and the cross-object checks of checks.js. Exit status 0 when every directory passes.
//
//   node validate.js --gateway=PATH [--secret=FILE]... [--pending_flags=FILE] [--promtool=PATH]
//        [--print] DIR...
//
// --gateway       the userpilot-gateway binary, asked for its flags (--help)
// --secret        YAML files of Secrets the manifests may reference (secret.example.yaml)
// --pending_flags flags assumed by the manifests but not in the binary yet (one per line, #
//                 comments): reported as warnings instead of errors
// --promtool      run `promtool check rules` on PrometheusRules ('' or absent: skipped)
// --rules         deploy/prometheus's rules file: every PrometheusRule's groups must equal its
//                 groups (sync_rules.js copies them)
// --print         print each rendering as YAML
'use strict';

const fs = require('fs');
const { isDeepStrictEqual } = require('util');
const path = require('path');
const YAML = require('yaml');
const { render, parseDocuments } = require('./kustomize');
const { validateObject } = require('./schema');
const { checkManifests, gatewayFlags } = require('./checks');

function parseArgs(argv) {
  const opts = { secrets: [], dirs: [], gateway: process.env.UPGW_GATEWAY_BIN || '', pending: '', promtool: '', rules: '', print: false };
  for (const arg of argv) {
    const m = /^--([a-z_]+)(?:=(.*))?$/.exec(arg);
    if (!m) opts.dirs.push(arg);
    else if (m[1] === 'gateway') opts.gateway = m[2];
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

// Validates one kustomization directory; returns {problems, warnings, objects}.
function validateDir(dir, { flags, pendingFlags, secrets, promtool, binary, ruleGroups }) {
  const problems = [];
  const warnings = [];
  let rendered;
  try {
    rendered = render(dir);
  } catch (e) {
    return { problems: [`render: ${e.message}`], warnings, objects: [] };
  }
  for (const file of rendered.files) {
    if (/secret\.example\.ya?ml$/.test(file)) problems.push(`${file}: the example Secret must not be part of a kustomization`);
  }
  for (const obj of rendered.objects) {
    for (const e of validateObject(obj)) problems.push(`${obj.kind}/${obj.metadata.name}: ${e}`);
  }
  problems.push(...checkManifests(rendered.objects, { flags, pendingFlags, secrets, promtool, warnings, binary }));
  if (ruleGroups) {
    for (const rule of rendered.objects.filter((o) => o.kind === 'PrometheusRule')) {
      if (!isDeepStrictEqual(rule.spec.groups, ruleGroups)) {
        problems.push(`PrometheusRule/${rule.metadata.name}: its groups differ from deploy/prometheus's rules: ` +
          'run `NODE_PATH=<build>/tests/deploy/npm/node_modules node tests/deploy/sync_rules.js`');
      }
    }
  }
  return { problems, warnings, objects: rendered.objects };
}

function loadContext(opts) {
  const flags = gatewayFlags(opts.gateway);
  const pendingFlags = new Set();
  if (opts.pending && fs.existsSync(opts.pending)) {
    for (const line of fs.readFileSync(opts.pending, 'utf8').split('\n')) {
      const flag = line.replace(/#.*/, '').trim();
      if (flag) pendingFlags.add(flag);
    }
  }
  const secrets = opts.secrets.flatMap((f) => parseDocuments(f)).filter((o) => o.kind === 'Secret');
  const ruleGroups = opts.rules && fs.existsSync(opts.rules) ? YAML.parse(fs.readFileSync(opts.rules, 'utf8')).groups : null;
  return { flags, pendingFlags, secrets, promtool: opts.promtool, binary: path.basename(opts.gateway), ruleGroups };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const ctx = loadContext(opts);
  for (const flag of ctx.pendingFlags) {
    if (ctx.flags.has(flag)) {
      console.log(`WARNING: --${flag} is now accepted by the gateway: remove it from ${opts.pending}`);
    }
  }
  let failed = 0;
  for (const dir of opts.dirs) {
    const { problems, warnings, objects } = validateDir(dir, ctx);
    if (opts.print) console.log(objects.map((o) => YAML.stringify(o)).join('---\n'));
    for (const w of warnings) console.log(`WARNING: ${dir}: ${w}`);
    if (problems.length) {
      failed++;
      console.log(`FAIL ${dir}: ${problems.length} problem(s)`);
      for (const p of problems) console.log(`  ${p}`);
    } else {
      const kinds = objects.map((o) => o.kind).join(', ');
      console.log(`ok   ${dir}: ${objects.length} objects (${kinds})`);
    }
  }
  console.log(`${opts.dirs.length - failed} passed, ${failed} failed`);
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

module.exports = { validateDir, loadContext };
