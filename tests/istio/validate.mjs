// Validates Kubernetes manifests against Istio's CRD schemas (the pinned
// @kubernetes-models/istio, installed into .node/ by `make ways-tools`).
// Reads a JSON array of manifests on stdin; prints one JSON line per
// manifest: {kind, name, ok, error}. tests/tests/istio.rs runs it.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

// The package's own files, by path (AIPIPE_NODE_MODULES: .node/node_modules).
const root = `${process.env.AIPIPE_NODE_MODULES}/@kubernetes-models/istio`;
const load = async (group, version, kind) =>
  (await import(pathToFileURL(`${root}/${group}/${version}/${kind}.js`).href))[kind];

const manifests = JSON.parse(readFileSync(0, "utf8"));
for (const m of manifests) {
  const [group, version] = String(m.apiVersion).split("/");
  let line = { kind: m.kind, name: m.metadata?.name ?? null, ok: false, error: null };
  try {
    const Model = await load(group, version, m.kind);
    new Model(m).validate();
    line.ok = true;
  } catch (e) {
    line.error = String(e.message ?? e);
  }
  console.log(JSON.stringify(line));
}
