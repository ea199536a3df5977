// Validates rendered manifests (`kubectl kustomize` output) in two halves:
// - custom resources (Strimzi, CloudNativePG, cert-manager, External Secrets, Prometheus
//   Operator) against their operators' published schemas, from the npm @kubernetes-models
//   packages pinned in package-lock.json: types, enums, patterns and required fields through
//   each model's validate(), and unknown fields through TypeScript's excess property checks on
//   the generated interfaces (a CRD's schema does not forbid them; a typo would be dropped
//   silently by the API server);
// - built-in kinds are written to the file named by --core for kubernetes-validate --strict.
// A kind this file does not know fails the check.
//
// node validate.mjs --core core.yaml rendered.yaml...

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));

// apiVersion -> the package directory of its models (one module per kind).
const MODELS = {
  "kafka.strimzi.io/v1": "@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1",
  "postgresql.cnpg.io/v1": "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1",
  "cert-manager.io/v1": "@kubernetes-models/cert-manager/cert-manager.io/v1",
  "external-secrets.io/v1": "@kubernetes-models/external-secrets/external-secrets.io/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

// API groups served by Kubernetes itself.
const CORE_GROUPS = new Set([
  "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
  "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
]);

function group(apiVersion) {
  return apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
}

const args = process.argv.slice(2);
const coreIndex = args.indexOf("--core");
if (coreIndex < 0 || !args[coreIndex + 1]) {
  console.error("usage: node validate.mjs --core core.yaml rendered.yaml...");
  process.exit(2);
}
const coreOut = args[coreIndex + 1];
const inputs = args.filter((_, i) => i !== coreIndex && i !== coreIndex + 1);

const failures = [];
const core = [];
const custom = [];
for (const file of inputs) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      failures.push(`${file}: ${doc.errors.map(String).join("; ")}`);
      continue;
    }
    const object = doc.toJSON();
    if (!object) continue;
    const name = `${file}: ${object.kind} ${object.metadata?.name}`;
    if (CORE_GROUPS.has(group(object.apiVersion))) {
      core.push(object);
    } else if (MODELS[object.apiVersion]) {
      custom.push({ name, object });
    } else {
      failures.push(`${name}: no schema for ${object.apiVersion} (add its models to validate/)`);
    }
  }
}

// Types, enums, patterns, required fields.
for (const { name, object } of custom) {
  const module = await import(`${MODELS[object.apiVersion]}/${object.kind}`).catch(() => null);
  const Model = module?.[object.kind];
  if (!Model) {
    failures.push(`${name}: ${object.apiVersion} has no kind ${object.kind}`);
    continue;
  }
  try {
    new Model(object).validate();
  } catch (error) {
    failures.push(`${name}: ${error.message}`);
  }
}

// Unknown fields: each resource as a literal of its generated interface.
if (custom.length) {
  // Inside this directory, so the packages resolve from its node_modules.
  const dir = mkdtempSync(join(here, ".check-"));
  const lines = [];
  const owners = [];
  custom.forEach(({ object }, i) => {
    lines.push(`import type { I${object.kind} as T${i} } from "${MODELS[object.apiVersion]}/${object.kind}";`);
    owners.push(null);
  });
  custom.forEach(({ name, object }, i) => {
    const literal = JSON.stringify(object, null, 1).split("\n");
    literal[0] = `export const r${i}: T${i} = ${literal[0]}`;
    for (const line of literal) {
      lines.push(line);
      owners.push(name);
    }
  });
  const source = join(dir, "resources.ts");
  writeFileSync(source, lines.join("\n") + "\n");
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        types: [],
      },
      files: [source],
    }),
  );
  try {
    execFileSync(join(here, "node_modules", ".bin", "tsc"), ["-p", dir], { encoding: "utf8" });
  } catch (error) {
    const output = `${error.stdout ?? ""}${error.stderr ?? ""}`;
    for (const line of output.split("\n").filter(Boolean)) {
      const at = line.match(/resources\.ts\((\d+),\d+\): (.*)/);
      failures.push(at ? `${owners[Number(at[1]) - 1] ?? "resources.ts"}: ${at[2]}` : line);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// As JSON (valid YAML): YAML 1.1 readers would take an unquoted `on` for a boolean.
writeFileSync(coreOut, core.map((object) => JSON.stringify(object)).join("\n---\n"));
for (const failure of failures) console.error(`FAIL ${failure}`);
console.log(
  `custom resources: ${custom.length} checked against their schemas, ${failures.length} problem(s); ` +
    `${core.length} built-in resources left for kubernetes-validate`,
);
process.exit(failures.length ? 1 : 0);
