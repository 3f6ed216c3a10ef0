// Runs flow-bench compiled to wasm32-wasip1 in Node's V8 (the engine Envoy
// embeds): node [--cpu-prof] tests/flow-bench/flow-bench.mjs FLOW_BENCH_WASM [ARGS...]
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, exit } from "node:process";

const [path, ...args] = argv.slice(2);
if (!path) {
  console.error("usage: node flow-bench.mjs target/wasm32-wasip1/release/flow-bench.wasm [--router] [--seconds N]");
  exit(2);
}
const wasi = new WASI({ version: "preview1", args: ["flow-bench", ...args], env: {} });
const module = await WebAssembly.compile(await readFile(path));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
exit(wasi.start(instance));
