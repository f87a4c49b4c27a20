// Checks a rendered Helm chart (the output of `helm template`):
//   1. every object validates against the Kubernetes JSON schemas of kubernetes-models (types,
//      required fields, enums and formats of a real Kubernetes release);
//   2. with --requirements: each DaemonSet container that runs a Sluice program is granted
//      exactly the capabilities the program declares (`<program> --print-requirements`), drops
//      all others, is not privileged, and mounts every host folder the program declares.
// Usage: node check_chart.mjs RENDERED.yaml [--requirements program=file.json ...]
// Exits 1 naming every problem found.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { parseAllDocuments } from "yaml";

const require = createRequire(import.meta.url);
const problems = [];

function modelFor(apiVersion, kind) {
  // kubernetes-models lays out one module per kind: <group>/<version>/<Kind> ("v1" for core).
  const path = `kubernetes-models/${apiVersion}/${kind}`;
  try {
    return require(path)[kind];
  } catch {
    return null;
  }
}

function validateObject(obj, where) {
  if (!obj || typeof obj !== "object" || !obj.apiVersion || !obj.kind) {
    problems.push(`${where}: not a Kubernetes object (no apiVersion/kind)`);
    return;
  }
  const Model = modelFor(obj.apiVersion, obj.kind);
  if (!Model) {
    problems.push(`${where}: ${obj.apiVersion} ${obj.kind} is not a kind of this Kubernetes release`);
    return;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    problems.push(`${where} (${obj.kind} ${obj.metadata?.name}): ${e.message}`);
  }
}

function checkRequirements(daemonSet, program, requirements) {
  const spec = daemonSet.spec.template.spec;
  const containers = [...(spec.initContainers ?? []), ...spec.containers].filter((c) => (c.command ?? [])[0] === program);
  if (containers.length !== 1) {
    problems.push(`DaemonSet ${daemonSet.metadata.name}: expected one container running ${program}, found ${containers.length}`);
    return;
  }
  const c = containers[0];
  const sc = c.securityContext ?? {};
  const where = `DaemonSet ${daemonSet.metadata.name} container ${c.name} (${program})`;
  if (sc.privileged) problems.push(`${where}: privileged (grant the declared capabilities instead)`);
  if (!(sc.capabilities?.drop ?? []).includes("ALL")) problems.push(`${where}: does not drop ALL capabilities`);
  const granted = new Set(sc.capabilities?.add ?? []);
  const declared = new Set(requirements.capabilities.map((cap) => cap.name.replace(/^CAP_/, "")));
  for (const cap of declared) if (!granted.has(cap)) problems.push(`${where}: lacks ${cap}, which ${program} needs`);
  for (const cap of granted) if (!declared.has(cap)) problems.push(`${where}: grants ${cap}, which ${program} does not declare`);
  const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const need of requirements.hostPaths) {
    const mounted = (c.volumeMounts ?? []).some((m) => volumes.get(m.name)?.hostPath?.path === need.hostPath);
    if (!mounted) problems.push(`${where}: does not mount host folder ${need.hostPath} (${need.why})`);
  }
}

const args = process.argv.slice(2);
if (args.length < 1) {
  console.error("usage: node check_chart.mjs RENDERED.yaml [--requirements program=file.json ...]");
  process.exit(2);
}
const docs = parseAllDocuments(readFileSync(args[0], "utf8"));
const objects = [];
docs.forEach((doc, i) => {
  if (doc.errors.length) problems.push(`document ${i}: ${doc.errors[0].message}`);
  const obj = doc.toJS();
  if (obj === null || obj === undefined) return;  // an empty document between separators
  objects.push(obj);
  validateObject(obj, `document ${i}`);
});
for (let i = 1; i < args.length; i++) {
  if (args[i] !== "--requirements" || !args[i + 1]?.includes("=")) {
    console.error(`unexpected argument ${args[i]}`);
    process.exit(2);
  }
  const [program, file] = args[++i].split("=");
  const requirements = JSON.parse(readFileSync(file, "utf8"));
  const daemonSets = objects.filter((o) => o.kind === "DaemonSet");
  if (daemonSets.length !== 1) problems.push(`expected one DaemonSet, found ${daemonSets.length}`);
  else checkRequirements(daemonSets[0], program, requirements);
}
if (problems.length) {
  for (const p of problems) console.error(`chart: ${p}`);
  process.exit(1);
}
console.log(`chart: ${objects.length} objects valid${args.length > 1 ? ", DaemonSet grants match the programs' requirements" : ""}`);
