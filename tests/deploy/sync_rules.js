#!/usr/bin/env node
// Writes deploy/kubernetes/base/prometheusrule.yaml from deploy/prometheus/userpilot-gateway.rules.yml,
// the one source of the gateway's recording and alerting rules (checked and unit-tested by
// promtool there). deploy.validate fails when the two differ, naming this command:
//
//   NODE_PATH=build/tests/deploy/npm/node_modules node tests/deploy/sync_rules.js
'use strict';

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const root = path.resolve(__dirname, '../..');
const RULES = path.join(root, 'deploy/prometheus/userpilot-gateway.rules.yml');
const OUT = path.join(root, 'deploy/kubernetes/base/prometheusrule.yaml');

function ruleGroups() {
  return YAML.parse(fs.readFileSync(RULES, 'utf8')).groups;
}

function render() {
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: 'userpilot-gateway',
      labels: { 'app.kubernetes.io/name': 'userpilot-gateway', 'app.kubernetes.io/component': 'gateway' },
    },
    spec: { groups: ruleGroups() },
  };
  return '# GENERATED from deploy/prometheus/userpilot-gateway.rules.yml by tests/deploy/sync_rules.js:\n' +
    '# edit the rules there (promtool checks and unit-tests them), then run sync_rules.js.\n' +
    '# What each alert means and what to do: deploy/prometheus/README.md.\n' +
    YAML.stringify(rule, { lineWidth: 0 });
}

if (require.main === module) {
  fs.writeFileSync(OUT, render());
  console.log(`wrote ${path.relative(root, OUT)} from ${path.relative(root, RULES)}`);
}

module.exports = { RULES, ruleGroups };
