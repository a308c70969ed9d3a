import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "./harness.js";

test("package_version_matches_the_server", () => {
  const cargo = readFileSync(join(repoRoot(), "Cargo.toml"), "utf8");
  const workspace = cargo.slice(cargo.indexOf("[workspace.package]"));
  const server = /^version\s*=\s*"([^"]+)"/m.exec(workspace)?.[1];
  const pkg = JSON.parse(readFileSync(join(repoRoot(), "clients/typescript/package.json"), "utf8")) as { version: string };
  assert.ok(server, "the workspace Cargo.toml has a version");
  assert.equal(pkg.version, server);
});
