// Checks a rendered Helm chart (the output of `helm template`):
//   1. every object validates against the Kubernetes JSON schemas of kubernetes-models (types,
//      required fields, enums and formats of a real Kubernetes release);
//   2. with --requirements: the container (of a DaemonSet or Deployment) that runs each named
//      Sluice program is granted exactly the capabilities the program declares
//      (`<program> --print-requirements`), drops all others, is not privileged, mounts every
//      host folder the program declares, and its service account's ClusterRole grants read
//      access (get, list, watch) to exactly the Kubernetes resources the program declares;
//   3. the tunnel's DaemonSet can be upgraded without failing a connection: it surges (a new
//      ztunnel starts beside the old one: maxSurge >= 1, maxUnavailable 0), declares no ports (on
//      hostNetwork they are hostPorts, which keep the scheduler from placing the surge pod), and
//      its grace period covers --handover-wait-ms and --drain-timeout-ms.
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

function checkRequirements(objects, program, requirements) {
  const found = [];
  for (const o of objects.filter((x) => x.kind === "DaemonSet" || x.kind === "Deployment")) {
    const spec = o.spec.template.spec;
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      if ((c.command ?? [])[0] === program) found.push({ workload: o, spec, c });
    }
  }
  if (found.length !== 1) {
    problems.push(`expected one container running ${program}, found ${found.length}`);
    return;
  }
  const { workload, spec, c } = found[0];
  const sc = c.securityContext ?? {};
  const where = `${workload.kind} ${workload.metadata.name} container ${c.name} (${program})`;
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
  // RBAC belongs to the pod's service account: checked once per workload, for all its programs.
  const key = `${workload.kind}/${workload.metadata.name}`;
  const entry = rbacNeeds.get(key) ?? { where: `${workload.kind} ${workload.metadata.name}`, account: spec.serviceAccountName, needs: [] };
  entry.needs.push(...(requirements.apiResources ?? []));
  rbacNeeds.set(key, entry);
}
const rbacNeeds = new Map();

function checkTunnelUpgrade(objects) {
  for (const o of objects.filter((x) => x.kind === "DaemonSet")) {
    const spec = o.spec.template.spec;
    const tunnel = spec.containers.find((c) => (c.command ?? [])[0] === "ztunnel");
    if (!tunnel) continue;
    const where = `DaemonSet ${o.metadata.name}`;
    const rolling = o.spec.updateStrategy?.rollingUpdate ?? {};
    if (o.spec.updateStrategy?.type !== "RollingUpdate" || !(Number(rolling.maxSurge) >= 1) || Number(rolling.maxUnavailable ?? 1) !== 0) {
      problems.push(`${where}: upgrades must surge (RollingUpdate, maxSurge >= 1, maxUnavailable 0) so the new tunnel takes the pods over from the old one`);
    }
    if (spec.hostNetwork && spec.containers.some((c) => (c.ports ?? []).length > 0)) {
      problems.push(`${where}: declares ports on hostNetwork; they become hostPorts and the surge pod cannot be scheduled beside the old one`);
    }
    const ms = (flag) => Number((tunnel.args ?? []).find((a) => a.startsWith(`${flag}=`))?.split("=")[1] ?? 0);
    const needed = (ms("--handover-wait-ms") + ms("--drain-timeout-ms")) / 1000;
    if ((spec.terminationGracePeriodSeconds ?? 30) <= needed) {
      problems.push(`${where}: terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds ?? 30} does not cover the handover wait and drain (${needed} s)`);
    }
  }
}

// The ClusterRoles bound to `account` grant exactly `needs` ({group, resource, verbs}).
function checkRbac(objects, where, account, needs) {
  const roles = objects
    .filter((o) => o.kind === "ClusterRoleBinding" && (o.subjects ?? []).some((s) => s.kind === "ServiceAccount" && s.name === account))
    .map((b) => objects.find((o) => o.kind === "ClusterRole" && o.metadata.name === b.roleRef.name))
    .filter(Boolean);
  const granted = new Map();  // "group/resource" -> Set(verbs)
  for (const role of roles) {
    for (const rule of role.rules ?? []) {
      for (const group of rule.apiGroups ?? []) {
        for (const resource of rule.resources ?? []) {
          const key = `${group}/${resource}`;
          granted.set(key, new Set([...(granted.get(key) ?? []), ...(rule.verbs ?? [])]));
        }
      }
    }
  }
  const wanted = new Map();  // "group/resource" -> Set(verbs)
  for (const n of needs) {
    const key = `${n.group}/${n.resource}`;
    wanted.set(key, new Set([...(wanted.get(key) ?? []), ...(n.verbs ?? ["get", "list", "watch"])]));
  }
  for (const [key, verbs] of wanted) {
    const have = granted.get(key) ?? new Set();
    for (const verb of verbs) if (!have.has(verb)) problems.push(`${where}: its service account cannot ${verb} ${key}`);
  }
  for (const [key, verbs] of granted) {
    if (!wanted.has(key)) {
      problems.push(`${where}: its service account may access ${key}, which its programs do not declare`);
      continue;
    }
    for (const verb of verbs) if (!wanted.get(key).has(verb)) problems.push(`${where}: its service account may ${verb} ${key}, which its programs do not declare`);
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
  checkRequirements(objects, program, JSON.parse(readFileSync(file, "utf8")));
}
for (const { where, account, needs } of rbacNeeds.values()) checkRbac(objects, where, account, needs);
checkTunnelUpgrade(objects);
if (problems.length) {
  for (const p of problems) console.error(`chart: ${p}`);
  process.exit(1);
}
console.log(`chart: ${objects.length} objects valid${args.length > 1 ? ", grants match the programs' requirements" : ""}`);
