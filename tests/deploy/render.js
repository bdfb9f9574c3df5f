// Renders a kustomization with real kustomize (`kubectl kustomize DIR`, kustomize v5 inside
// kubectl), exactly what `kubectl apply -k DIR` sends to a cluster, and reads the objects back.
'use strict';

const { execFileSync } = require('child_process');
const fs = require('fs');
const YAML = require('yaml');

// Where a pod spec sits in each workload kind.
const POD_SPEC_PATHS = {
  Deployment: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
  Pod: ['spec'],
};

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseText(text, where) {
  const out = [];
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${where}: ${doc.errors[0].message}`);
    const value = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

// The YAML documents of a file, as objects.
function parseDocuments(file) {
  return parseText(fs.readFileSync(file, 'utf8'), file);
}

// The objects `kubectl kustomize dir` renders; throws with kustomize's message when it fails.
function render(dir, kubectl = 'kubectl') {
  let out;
  try {
    out = execFileSync(kubectl, ['kustomize', dir], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20,
    });
  } catch (e) {
    if (e.code === 'ENOENT') throw new Error(`${kubectl} not found: kubectl (kustomize v5) renders the manifests`);
    // klog's `E1207 02:24:34.663928 21771 run.go:72] "command failed" err="..."`: the err text.
    const stderr = `${e.stderr || ''}`.trim();
    const m = /err="((?:[^"\\]|\\.)*)"/s.exec(stderr);
    const message = m ? m[1].replace(/\\"/g, '"') : stderr;
    throw new Error(`kubectl kustomize ${dir}: ${message || e.message}`);
  }
  return parseText(out, `kubectl kustomize ${dir}`);
}

function podSpecOf(obj) {
  const at = POD_SPEC_PATHS[obj.kind];
  if (!at) return undefined;
  let node = obj;
  for (const key of at) {
    if (!isObject(node)) return undefined;
    node = node[key];
  }
  return isObject(node) ? node : undefined;
}

function containersOf(podSpec) {
  return [...(podSpec.initContainers || []), ...(podSpec.containers || [])];
}

module.exports = { render, parseDocuments, podSpecOf, containersOf };
