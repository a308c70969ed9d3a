import assert from "node:assert/strict";
import { test } from "node:test";
import { parseSse } from "../src/sse.js";

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield new TextEncoder().encode(p);
}

test("sse_parser_joins_messages_split_across_chunks", async () => {
  const stream = chunks(": following after 0\n\nid: 7\nevent: task.fa", "iled\ndata: {\"cursor\":7}\n\n", "id: 8\r", "\ndata: a\r\ndata: b\r\n\r\n: keep-alive\n\n");
  const got = [];
  for await (const m of parseSse(stream)) got.push(m);
  assert.deepEqual(got, [
    { id: "7", event: "task.failed", data: '{"cursor":7}' },
    { id: "8", event: undefined, data: "a\nb" },
  ]);
});
