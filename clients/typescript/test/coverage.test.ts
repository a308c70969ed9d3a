import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { KNOWN_FIELDS, KNOWN_OPERATIONS, type RotaClient } from "../src/index.js";
import { TestServer } from "./harness.js";

let server: TestServer;
let rota: RotaClient;
before(async () => {
  server = await TestServer.start();
  rota = server.client();
});
after(() => server.stop());

interface Schema {
  properties?: Record<string, unknown>;
  allOf?: Schema[];
}
interface OpenApi {
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Schema> };
}

const METHODS = ["get", "put", "post", "patch", "delete", "head", "options", "trace"];

test("test_s15_openapi_coverage", async () => {
  const doc = (await rota.openapi()) as unknown as OpenApi;

  const known = new Set(KNOWN_OPERATIONS);
  const served = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((m) => METHODS.includes(m))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
  assert.ok(served.length > 50, "the document lists the API");
  assert.deepEqual(served.filter((op) => !known.has(op)), [], "operations the server has and the library does not know");
  assert.deepEqual([...known].filter((op) => !served.includes(op)), [], "operations the library knows and the server no longer has");

  const missing: string[] = [];
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    const fields = [schema, ...(schema.allOf ?? [])].flatMap((s) => Object.keys(s.properties ?? {}));
    const knownFields = new Set(KNOWN_FIELDS[name] ?? []);
    for (const field of fields) if (!knownFields.has(field)) missing.push(`${name}.${field}`);
  }
  assert.deepEqual(missing, [], "fields the server has and the library does not know");
});
