import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { RotaClient, type ClientOptions } from "../src/index.js";

/** The repository root: the nearest folder above this file with a Cargo.toml. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "Cargo.toml"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the repository root (no Cargo.toml above the tests)");
    dir = up;
  }
  return dir;
}

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
  });
}

/** A `rota serve` of this test file's own, on a free port and a fresh data directory. */
export class TestServer {
  private constructor(
    readonly url: string,
    readonly token: string,
    private readonly proc: ChildProcess,
    private readonly dataDir: string,
  ) {}

  static async start(): Promise<TestServer> {
    const bin = process.env.ROTA_BIN ?? resolve(repoRoot(), "target/debug/rota");
    if (!existsSync(bin)) throw new Error(`no rota binary at ${bin}: build it (cargo build -p rota) or set ROTA_BIN`);
    const dataDir = mkdtempSync(join(tmpdir(), "rota-ts-"));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = spawn(bin, ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {
      env: { ...process.env, ROTA_LOG: process.env.ROTA_LOG ?? "warn", ROTA_WEBHOOKS_ALLOW_PRIVATE: "true" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    for (let i = 0; i < 300; i++) {
      if (proc.exitCode !== null) throw new Error(`rota serve exited with ${proc.exitCode}`);
      try {
        const resp = await fetch(`${url}/healthz`);
        if (resp.ok && existsSync(join(dataDir, "admin-token"))) {
          const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
          return new TestServer(url, token, proc, dataDir);
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    proc.kill("SIGKILL");
    throw new Error("rota serve did not become healthy in 30 s");
  }

  /** A client with the admin token (or the options given). */
  client(options: ClientOptions = {}): RotaClient {
    return new RotaClient({ url: this.url, token: this.token, ...options });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      const exited = new Promise((done) => this.proc.once("exit", done));
      this.proc.kill("SIGTERM");
      await Promise.race([exited, sleep(5_000)]);
      if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

let counter = 0;
/** A queue name no other test uses. */
export function queueName(prefix: string): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/** Polls `check` until it answers something truthy, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
