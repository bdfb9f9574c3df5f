// Kubernetes schema validation of rendered objects, offline.
//
// 1. kubernetes-models' bundled JSON-schema validators (`new Deployment(obj).validate()`): types,
//    required fields, enums and formats.
// 2. Unknown fields, which those validators accept silently (a misspelt `readinesProbe` would
//    pass): every property name is looked up in the models' TypeScript declarations (.d.ts),
//    which list each type's fields, recursively. Inline object types (as in the Prometheus
//    Operator CRDs) are checked one level deep and not below.
'use strict';

const fs = require('fs');
const path = require('path');

// apiVersion group -> npm module root that holds its models.
function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  if (group === 'monitoring.coreos.com') {
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  }
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

function loadModel(obj) {
  const id = modelModule(obj.apiVersion, obj.kind);
  let mod;
  try {
    mod = require(id);
  } catch (e) {
    return { error: `no schema for ${obj.apiVersion} ${obj.kind} (${id})` };
  }
  const cls = mod[obj.kind];
  if (!cls) return { error: `no model class ${obj.kind} in ${id}` };
  return { cls, dts: require.resolve(id).replace(/\.js$/, '.d.ts') };
}

// ---- .d.ts parsing ----------------------------------------------------------------------------

const parsedFiles = new Map();  // file -> {interfaces: name -> {props}, imports: name -> file}

function resolveImport(fromFile, spec) {
  let base;
  if (spec.startsWith('.')) {
    base = path.resolve(path.dirname(fromFile), spec);
  } else {
    try {
      base = require.resolve(`${spec}.js`, { paths: [path.dirname(fromFile)] });
    } catch (e) {
      return '';  // A package entry point (types such as TypeMeta): not a model.
    }
  }
  return `${base.replace(/\.d\.ts$/, '').replace(/\.js$/, '')}.d.ts`;
}

// Splits `text` (the body of an object type) into top-level `"name"?: type;` members.
function members(body) {
  const out = new Map();
  let depth = 0;
  let start = 0;
  const pieces = [];
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '{' || c === '<' || c === '(' || c === '[') depth++;
    else if (c === '}' || c === '>' || c === ')' || c === ']') depth--;
    else if (c === ';' && depth === 0) {
      pieces.push(body.slice(start, i));
      start = i + 1;
    }
  }
  for (const piece of pieces) {
    const text = piece.replace(/\/\*[\s\S]*?\*\//g, '').trim();
    const m = /^"([^"]+)"\??\s*:\s*([\s\S]+)$/.exec(text);
    if (m) out.set(m[1], m[2].trim());
    else if (/^\[key: string\]/.test(text)) out.set('*', text.replace(/^\[key: string\]\s*:\s*/, ''));
  }
  return out;
}

function matchingBrace(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  throw new Error('unbalanced braces');
}

function parseDts(file) {
  if (parsedFiles.has(file)) return parsedFiles.get(file);
  // Comments first: they hold '<', ';' and quotes that would confuse the member splitter.
  const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
  const imports = new Map();
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      const [orig, alias] = name.split(/\s+as\s+/);
      imports.set((alias || orig).trim(), { file: resolveImport(file, m[2]), name: orig.trim() });
    }
  }
  const interfaces = new Map();
  for (const m of text.matchAll(/export interface (\w+)(?: extends [\w, ]+)? \{/g)) {
    const open = m.index + m[0].length - 1;
    const props = members(text.slice(open + 1, matchingBrace(text, open)));
    if (/extends TypeMeta/.test(m[0])) {
      props.set('apiVersion', 'string');
      props.set('kind', 'string');
    }
    interfaces.set(m[1], props);
  }
  // `export { IDeployment as IIoK8sApiAppsV1Deployment, ... }`
  for (const m of text.matchAll(/export \{([^}]*)\}/g)) {
    for (const item of m[1].split(',')) {
      const [orig, alias] = item.split(/\s+as\s+/).map((s) => s && s.trim());
      if (alias && interfaces.has(orig)) interfaces.set(alias, interfaces.get(orig));
    }
  }
  const parsed = { interfaces, imports };
  parsedFiles.set(file, parsed);
  return parsed;
}

// The members of the type named `name` as seen from `file`, or undefined when not an interface.
function lookup(file, name) {
  const parsed = parseDts(file);
  if (parsed.interfaces.has(name)) return { file, props: parsed.interfaces.get(name) };
  const imported = parsed.imports.get(name);
  if (imported && fs.existsSync(imported.file)) return lookup(imported.file, imported.name);
  return undefined;
}

function checkUnknown(value, type, file, where, errors) {
  if (value === null || value === undefined) return;
  type = type.trim();
  let m;
  if ((m = /^Array<([\s\S]+)>$/.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, i) => checkUnknown(v, m[1], file, `${where}[${i}]`, errors));
    return;
  }
  if ((m = /^\{\s*\[key: string\]:\s*([\s\S]+?);?\s*\}$/.exec(type))) {
    if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) checkUnknown(v, m[1], file, `${where}.${k}`, errors);
    }
    return;
  }
  let props;
  if (/^\w+$/.test(type)) {
    const found = lookup(file, type);
    if (!found) return;
    props = found.props;
    file = found.file;
  } else if (/^\{[\s\S]*\}$/.test(type)) {
    props = members(type.slice(1, -1));
  } else {
    return;  // A primitive, a union or something this checker does not model.
  }
  if (typeof value !== 'object' || Array.isArray(value)) return;
  for (const [k, v] of Object.entries(value)) {
    if (props.has(k)) checkUnknown(v, props.get(k), file, `${where}.${k}`, errors);
    else if (props.has('*')) checkUnknown(v, props.get('*'), file, `${where}.${k}`, errors);
    else errors.push(`${where}.${k}: unknown field`);
  }
}

// Validates one object; returns a list of error strings.
function validateObject(obj) {
  const { cls, dts, error } = loadModel(obj);
  if (error) return [error];
  const errors = [];
  try {
    new cls(obj).validate();
  } catch (e) {
    errors.push(`schema: ${e.message}`);
  }
  try {
    const iface = `I${obj.kind}`;
    checkUnknown(obj, iface, dts, obj.kind, errors);
  } catch (e) {
    errors.push(`unknown-field check failed: ${e.message}`);
  }
  return errors;
}

module.exports = { validateObject };
