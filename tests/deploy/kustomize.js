// The subset of kustomize that deploy/kubernetes uses, so the manifests can be rendered and
// checked offline without kubectl (not available on the build machines).
//
// Supported kustomization.yaml fields, with kustomize's semantics:
//   resources          files (one or more YAML documents) and directories holding a kustomization
//   namespace          set on every namespaced object
//   configMapGenerator name, literals, envs, behavior (create | merge | replace),
//                      options.disableNameSuffixHash; the name gets kustomize's content-hash
//                      suffix and references from pod specs follow it
//   patches            strategic merge patches (path or inline patch, optional target) and
//                      JSON 6902 patches (a list of operations, with a target)
//   images             name -> newName / newTag / digest in pod templates
// Any other field is an error, so the renderer never silently ignores what kustomize would do.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const KNOWN_FIELDS = new Set([
  'apiVersion', 'kind', 'namespace', 'resources', 'configMapGenerator', 'patches', 'images',
]);
const CLUSTER_SCOPED = new Set([
  'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PriorityClass',
  'StorageClass', 'PersistentVolume', 'IngressClass', 'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration', 'APIService',
]);
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

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseDocuments(file) {
  const text = fs.readFileSync(file, 'utf8');
  const docs = YAML.parseAllDocuments(text);
  const out = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
    const value = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function kustomizationFile(dir) {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) return file;
  }
  throw new Error(`${dir}: no kustomization.yaml`);
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

// ---- strategic merge patch ------------------------------------------------------------------

// The patchMergeKey of the lists deploy/kubernetes patches, by field name (and, for `ports`,
// by whether the list belongs to a container or to a Service).
function mergeKeyFor(field, parentPath) {
  switch (field) {
    case 'containers': case 'initContainers': case 'ephemeralContainers': case 'volumes':
    case 'env': case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts': case 'volumeDevices':
      return 'mountPath';
    case 'ports':
      return parentPath.includes('containers') || parentPath.includes('initContainers')
        ? 'containerPort' : 'port';
    case 'topologySpreadConstraints':
      return 'topologyKey';
    default:
      return undefined;
  }
}

function strategicMerge(target, patch, parentPath = []) {
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch') continue;
    const here = [...parentPath, key];
    if (value === null) {
      delete target[key];
    } else if (isObject(value) && value.$patch === 'replace') {
      const { $patch, ...rest } = value;
      target[key] = clone(rest);
    } else if (isObject(value) && isObject(target[key])) {
      strategicMerge(target[key], value, here);
    } else if (Array.isArray(value) && Array.isArray(target[key]) && mergeKeyFor(key, parentPath)) {
      const mergeKey = mergeKeyFor(key, parentPath);
      for (const item of value) {
        if (!isObject(item) || item[mergeKey] === undefined) {
          throw new Error(`patch: an item of ${here.join('.')} lacks its merge key ${mergeKey}`);
        }
        const at = target[key].findIndex((t) => isObject(t) && t[mergeKey] === item[mergeKey]);
        if (item.$patch === 'delete') {
          if (at >= 0) target[key].splice(at, 1);
        } else if (at >= 0) {
          strategicMerge(target[key][at], item, here);
        } else {
          const { $patch, ...rest } = item;
          target[key].push(clone(rest));
        }
      }
    } else {
      target[key] = clone(value);
    }
  }
  return target;
}

// ---- JSON 6902 ------------------------------------------------------------------------------

function pointer(p) {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new Error(`json patch: bad path ${p}`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function jsonPatch(doc, ops) {
  for (const op of ops) {
    const parts = pointer(op.path);
    const last = parts.pop();
    let parent = doc;
    for (const part of parts) {
      parent = Array.isArray(parent) ? parent[Number(part)] : parent[part];
      if (parent === undefined) throw new Error(`json patch: ${op.path} does not exist`);
    }
    const index = Array.isArray(parent) ? (last === '-' ? parent.length : Number(last)) : last;
    switch (op.op) {
      case 'add':
        if (Array.isArray(parent)) parent.splice(index, 0, clone(op.value));
        else parent[index] = clone(op.value);
        break;
      case 'replace':
        if (parent[index] === undefined) throw new Error(`json patch: ${op.path} does not exist`);
        parent[index] = clone(op.value);
        break;
      case 'remove':
        if (parent[index] === undefined) throw new Error(`json patch: ${op.path} does not exist`);
        if (Array.isArray(parent)) parent.splice(index, 1);
        else delete parent[index];
        break;
      case 'test':
        if (JSON.stringify(parent[index]) !== JSON.stringify(op.value)) {
          throw new Error(`json patch: test failed at ${op.path}`);
        }
        break;
      default:
        throw new Error(`json patch: unsupported op ${op.op}`);
    }
  }
}

function matchesTarget(obj, target) {
  if (!target) return true;
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  if (target.kind && target.kind !== obj.kind) return false;
  if (target.name && target.name !== obj.metadata.name) return false;
  if (target.namespace && target.namespace !== obj.metadata.namespace) return false;
  if (target.group !== undefined && target.group !== group) return false;
  if (target.version && target.version !== version) return false;
  for (const key of Object.keys(target)) {
    if (!['kind', 'name', 'namespace', 'group', 'version'].includes(key)) {
      throw new Error(`patch target: unsupported field ${key}`);
    }
  }
  return true;
}

function applyPatches(objects, patches, dir) {
  for (const entry of patches || []) {
    const text = entry.path ? fs.readFileSync(path.join(dir, entry.path), 'utf8') : entry.patch;
    if (typeof text !== 'string') throw new Error(`${dir}: a patch needs path or patch`);
    const docs = YAML.parseAllDocuments(text).map((d) => d.toJS()).filter((d) => d != null);
    for (const doc of docs) {
      if (Array.isArray(doc)) {
        if (!entry.target) throw new Error(`${dir}: a JSON 6902 patch needs a target`);
        const hits = objects.filter((o) => matchesTarget(o, entry.target));
        if (!hits.length) throw new Error(`${dir}: patch target ${JSON.stringify(entry.target)} matches nothing`);
        for (const obj of hits) jsonPatch(obj, doc);
      } else {
        const target = entry.target || {
          kind: doc.kind, name: doc.metadata && doc.metadata.name,
        };
        const hits = objects.filter((o) => matchesTarget(o, target) &&
          (entry.target || o.apiVersion === doc.apiVersion));
        if (!hits.length) {
          throw new Error(`${dir}: patch for ${doc.kind}/${doc.metadata && doc.metadata.name} matches nothing`);
        }
        for (const obj of hits) {
          const { metadata, ...rest } = doc;
          strategicMerge(obj, entry.target ? doc : rest);
          if (!entry.target && metadata) {
            const { name, namespace, ...meta } = metadata;
            strategicMerge(obj.metadata, meta);
          }
        }
      }
    }
  }
}

// ---- generators and images ------------------------------------------------------------------

function generatorData(gen, dir) {
  const data = {};
  for (const literal of gen.literals || []) {
    const eq = literal.indexOf('=');
    if (eq <= 0) throw new Error(`${dir}: configMapGenerator ${gen.name}: bad literal ${literal}`);
    data[literal.slice(0, eq)] = literal.slice(eq + 1);
  }
  for (const file of gen.envs || []) {
    for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
      const trimmed = line.trim();
      if (!trimmed || trimmed.startsWith('#')) continue;
      const eq = trimmed.indexOf('=');
      if (eq <= 0) throw new Error(`${dir}/${file}: bad line ${trimmed}`);
      data[trimmed.slice(0, eq)] = trimmed.slice(eq + 1);
    }
  }
  for (const key of Object.keys(gen)) {
    if (!['name', 'namespace', 'literals', 'envs', 'behavior', 'options'].includes(key)) {
      throw new Error(`${dir}: configMapGenerator ${gen.name}: unsupported field ${key}`);
    }
  }
  return data;
}

function applyGenerators(objects, generators, dir) {
  for (const gen of generators || []) {
    const behavior = gen.behavior || 'create';
    const data = generatorData(gen, dir);
    const existing = objects.find((o) => o.kind === 'ConfigMap' && o.__generatedName === gen.name);
    if (behavior === 'create') {
      if (existing) throw new Error(`${dir}: configMapGenerator ${gen.name} already exists (use behavior: merge)`);
      const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name }, data };
      if (gen.namespace) cm.metadata.namespace = gen.namespace;
      Object.defineProperty(cm, '__generatedName', { value: gen.name, writable: true });
      Object.defineProperty(cm, '__hash', {
        value: !(gen.options && gen.options.disableNameSuffixHash), writable: true,
      });
      objects.push(cm);
    } else if (behavior === 'merge' || behavior === 'replace') {
      if (!existing) throw new Error(`${dir}: configMapGenerator ${gen.name}: nothing to ${behavior}`);
      existing.data = behavior === 'merge' ? { ...existing.data, ...data } : data;
    } else {
      throw new Error(`${dir}: configMapGenerator ${gen.name}: unknown behavior ${behavior}`);
    }
  }
}

function applyImages(objects, images) {
  for (const image of images || []) {
    for (const obj of objects) {
      const spec = podSpecOf(obj);
      if (!spec) continue;
      for (const c of containersOf(spec)) {
        const m = /^(.*?)(?::([^:/@]+))?(?:@(.+))?$/.exec(c.image || '');
        if (!m || m[1] !== image.name) continue;
        const name = image.newName || m[1];
        if (image.digest) c.image = `${name}@${image.digest}`;
        else c.image = `${name}:${image.newTag || m[2] || 'latest'}`;
      }
    }
  }
}

// kustomize's ConfigMap hash suffix (api/hasher): the first 10 hex digits of the SHA-256 of the
// Go JSON encoding of {data, kind, name}, with 0 1 3 a e swapped for g h k m t.
function configMapHash(cm) {
  const sorted = (o) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
  const json = JSON.stringify(sorted({ data: sorted(cm.data || {}), kind: 'ConfigMap', name: cm.metadata.name }))
    .replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  const hex = crypto.createHash('sha256').update(json).digest('hex').slice(0, 10);
  return hex.replace(/[013ae]/g, (c) => ({ 0: 'g', 1: 'h', 3: 'k', a: 'm', e: 't' })[c]);
}

// Renames hashed generated ConfigMaps and points pod-spec references at the new names.
function finishGenerated(objects) {
  for (const cm of objects.filter((o) => o.__generatedName)) {
    if (!cm.__hash) continue;
    const oldName = cm.metadata.name;
    const newName = `${oldName}-${configMapHash(cm)}`;
    cm.metadata.name = newName;
    for (const obj of objects) {
      const spec = podSpecOf(obj);
      if (!spec || (obj.metadata.namespace || '') !== (cm.metadata.namespace || '')) continue;
      for (const c of containersOf(spec)) {
        for (const from of c.envFrom || []) {
          if (from.configMapRef && from.configMapRef.name === oldName) from.configMapRef.name = newName;
        }
        for (const e of c.env || []) {
          const ref = e.valueFrom && e.valueFrom.configMapKeyRef;
          if (ref && ref.name === oldName) ref.name = newName;
        }
      }
      for (const v of spec.volumes || []) {
        if (v.configMap && v.configMap.name === oldName) v.configMap.name = newName;
        for (const s of (v.projected && v.projected.sources) || []) {
          if (s.configMap && s.configMap.name === oldName) s.configMap.name = newName;
        }
      }
    }
  }
}

// ---- the build --------------------------------------------------------------------------------

// Renders one kustomization level; `files` collects every file read (for checks).
function build(dir, files) {
  const kfile = kustomizationFile(dir);
  files.push(kfile);
  const [k] = parseDocuments(kfile);
  for (const key of Object.keys(k)) {
    if (!KNOWN_FIELDS.has(key)) throw new Error(`${kfile}: unsupported field ${key}`);
  }
  const objects = [];
  for (const resource of k.resources || []) {
    const at = path.resolve(dir, resource);
    if (!fs.existsSync(at)) throw new Error(`${kfile}: resource ${resource} does not exist`);
    if (fs.statSync(at).isDirectory()) {
      objects.push(...build(at, files));
    } else {
      files.push(at);
      for (const doc of parseDocuments(at)) {
        if (!doc.apiVersion || !doc.kind || !doc.metadata || !doc.metadata.name) {
          throw new Error(`${at}: every object needs apiVersion, kind and metadata.name`);
        }
        objects.push(doc);
      }
    }
  }
  applyGenerators(objects, k.configMapGenerator, dir);
  if (k.namespace) {
    for (const obj of objects) {
      if (!CLUSTER_SCOPED.has(obj.kind)) obj.metadata.namespace = k.namespace;
    }
  }
  applyPatches(objects, k.patches, dir);
  applyImages(objects, k.images);
  return objects;
}

// Renders the kustomization in `dir` as `kustomize build` would. Returns {objects, files}.
function render(dir) {
  const files = [];
  const objects = build(path.resolve(dir), files);
  finishGenerated(objects);
  const seen = new Set();
  for (const obj of objects) {
    const id = `${obj.apiVersion.split('/').length > 1 ? obj.apiVersion.split('/')[0] : ''}/${obj.kind}/${obj.metadata.namespace || ''}/${obj.metadata.name}`;
    if (seen.has(id)) throw new Error(`${dir}: two objects ${obj.kind}/${obj.metadata.name}`);
    seen.add(id);
  }
  return { objects: objects.map((o) => clone(o)), files };
}

module.exports = { render, strategicMerge, configMapHash, podSpecOf, containersOf, parseDocuments };
