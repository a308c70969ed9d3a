import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { RotaError, TransportError } from "./errors.js";
import { AccessTokens, type ClientCredentials, requestToken } from "./oauth.js";

/** How a client reaches the server. Every field has a default from the environment. */
export interface ClientOptions {
  /** The server, e.g. `http://127.0.0.1:7070`. Default: `ROTA_URL`, else `http://127.0.0.1:7070`. */
  url?: string;
  /** An API key's token (or a JWT), sent as `Authorization: Bearer`. Default: `ROTA_TOKEN`. */
  token?: string;
  /**
   * Instead of a token: an API key's id and token exchanged for OAuth 2.0 access tokens
   * (client credentials), fetched on first use, again shortly before each expires, and once
   * more when a request is answered 401 (which is then tried once more). `ROTA_TOKEN` is not read.
   */
  clientCredentials?: ClientCredentials;
  /** Act in this tenant (admin credentials only), sent as `Rota-Tenant`. Default: `ROTA_TENANT`. */
  tenant?: string;
  /** Longest a request may take, in ms, on top of any wait it asks the server for. Default 30,000. */
  timeoutMs?: number;
  /** Tries a read gets when the server cannot be reached. Default 3. Writes are tried once. */
  readAttempts?: number;
  /** Makes the `X-Request-Id` of each request. Default: a random UUID. */
  requestId?: () => string;
  /** The fetch implementation. Default: the global `fetch`. */
  fetch?: typeof fetch;
}

/** What one call may add to a request. */
export interface CallOptions {
  /** Aborts the request. */
  signal?: AbortSignal;
  /** This call's timeout in ms, instead of the client's. */
  timeoutMs?: number;
  /** This call's `X-Request-Id`. */
  requestId?: string;
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
export type Query = Record<string, string | number | boolean | readonly string[] | null | undefined>;

export interface Request {
  method: Method;
  path: string;
  query?: Query;
  body?: unknown;
  /** A long poll's wait: the timeout grows by this much. */
  waitMs?: number;
  headers?: Record<string, string>;
  /** A form to send (`application/x-www-form-urlencoded`) instead of a JSON `body`. */
  form?: Record<string, string>;
  /** Sent without the client's credential and tenant (the token endpoint's request). */
  anonymous?: boolean;
  /** A stream: no timeout once the answer has begun, only the caller's signal. */
  stream?: boolean;
  /** Error statuses whose answer is returned rather than thrown (e.g. 503 from `/readyz`). */
  accept?: number[];
}

const DEFAULT_URL = "http://127.0.0.1:7070";

/** Sends requests and turns error answers into {@link RotaError}. Shared by the API groups. */
export class Transport {
  readonly baseUrl: string;
  readonly tenant: string | undefined;
  private readonly token: string | undefined;
  private readonly tokens: AccessTokens | undefined;
  private readonly timeoutMs: number;
  private readonly readAttempts: number;
  private readonly makeId: () => string;
  private readonly fetch: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const env = process.env;
    this.baseUrl = (options.url ?? env.ROTA_URL ?? DEFAULT_URL).replace(/\/+$/, "");
    const credentials = options.clientCredentials;
    if (credentials !== undefined && options.token !== undefined) {
      throw new TypeError("give a token or client credentials, not both");
    }
    this.tokens = credentials && new AccessTokens(() => requestToken(this, credentials));
    const token = credentials ? undefined : (options.token ?? env.ROTA_TOKEN);
    if (token !== undefined && token.trim() === "") {
      throw new TypeError(
        "the token is set but empty; set ROTA_TOKEN to an API key's token " +
          "(e.g. ROTA_TOKEN=$(cat rota-data/admin-token))",
      );
    }
    this.token = token;
    this.tenant = options.tenant ?? (env.ROTA_TENANT || undefined);
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.readAttempts = Math.max(1, options.readAttempts ?? 3);
    this.makeId = options.requestId ?? randomUUID;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /** The URL of `path` with `query` (absent and null values left out, arrays comma-joined). */
  url(path: string, query?: Query): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      params.set(key, Array.isArray(value) ? value.join(",") : String(value));
    }
    const qs = params.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ""}`;
  }

  headers(requestId: string, extra?: Record<string, string>, anonymous = false): Record<string, string> {
    const headers: Record<string, string> = { "x-request-id": requestId, ...extra };
    if (anonymous) return headers;
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (this.tenant !== undefined) headers["rota-tenant"] = this.tenant;
    return headers;
  }

  /** Sends `req` and decodes the JSON answer. Only GETs are retried, and only on transport failures. */
  async json<T>(req: Request, call: CallOptions = {}): Promise<T> {
    const requestId = call.requestId ?? this.makeId();
    const resp = await this.send(req, { ...call, requestId });
    let text: string;
    try {
      text = await resp.text();
    } catch (cause) {
      // The answer began but did not finish (reset, or the timeout ran out while it came).
      if (call.signal?.aborted) throw call.signal.reason;
      throw new TransportError(`the answer from ${this.baseUrl} was cut short: ${describe(cause)}`, requestId, { cause });
    }
    return (text === "" ? undefined : JSON.parse(text)) as T;
  }

  /**
   * Sends `req` and answers the successful response as it is (for streams and plain text).
   * With client credentials, a 401 drops the access token and the request is sent once more
   * with a new one (it was refused, so nothing happened).
   */
  async send(req: Request, call: CallOptions = {}): Promise<Response> {
    const requestId = call.requestId ?? this.makeId();
    const attempts = req.method === "GET" ? this.readAttempts : 1;
    const timeout = (call.timeoutMs ?? this.timeoutMs) + (req.waitMs ?? 0);
    const contentType: Record<string, string> = req.form
      ? { "content-type": "application/x-www-form-urlencoded" }
      : req.body !== undefined
        ? { "content-type": "application/json" }
        : {};
    const headers = this.headers(requestId, { ...contentType, ...req.headers }, req.anonymous);
    const init: RequestInit = {
      method: req.method,
      headers,
      body: req.form ? new URLSearchParams(req.form).toString() : req.body !== undefined ? JSON.stringify(req.body) : undefined,
    };
    const url = this.url(req.path, req.query);
    const tokens = req.anonymous ? undefined : this.tokens;
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      let bearer: string | undefined;
      if (tokens) {
        bearer = await tokens.token();
        headers.authorization = `Bearer ${bearer}`;
      }
      const signals = req.stream ? [] : [AbortSignal.timeout(timeout)];
      if (call.signal) signals.push(call.signal);
      let resp: Response;
      try {
        resp = await this.fetch(url, { ...init, signal: AbortSignal.any(signals) });
      } catch (cause) {
        if (call.signal?.aborted) throw call.signal.reason;
        if (attempt < attempts) {
          await sleep(100 << attempt, undefined, { signal: call.signal });
          continue;
        }
        const why = cause instanceof Error && cause.name === "TimeoutError" ? `timed out after ${timeout} ms` : describe(cause);
        throw new TransportError(`cannot reach the Rota server at ${this.baseUrl}: ${why}`, requestId, { cause });
      }
      if (resp.ok || req.accept?.includes(resp.status)) return resp;
      if (resp.status === 401 && tokens && bearer !== undefined && !refreshed) {
        refreshed = true;
        tokens.refused(bearer);
        await resp.body?.cancel().catch(() => undefined);
        attempt--; // not a transport failure: the retry does not spend a read's attempt
        continue;
      }
      throw await errorOf(resp, requestId);
    }
  }
}

function describe(cause: unknown): string {
  if (cause instanceof Error) {
    const inner = cause.cause instanceof Error ? `: ${cause.cause.message}` : "";
    return `${cause.message}${inner}`;
  }
  return String(cause);
}

async function errorOf(resp: Response, requestId: string): Promise<RotaError> {
  const text = await resp.text().catch(() => "");
  const retry = resp.headers.get("retry-after");
  const seconds = retry === null ? NaN : Number(retry);
  const retryAfter = Number.isFinite(seconds) ? seconds : undefined;
  const id = resp.headers.get("x-request-id") ?? requestId;
  try {
    const answer = JSON.parse(text) as { error?: { code?: unknown; message?: string } | string; error_description?: string };
    const { error } = answer;
    if (typeof error === "string") {
      // OAuth's shape (RFC 6749), from the token endpoint: its `error` is the code.
      return new RotaError(resp.status, error, answer.error_description ?? error, id, retryAfter);
    }
    if (typeof error?.code === "string") {
      return new RotaError(resp.status, error.code, error.message ?? "", id, retryAfter);
    }
  } catch {
    // Not Rota's error shape (a proxy's page, say): keep its text.
  }
  return new RotaError(resp.status, "unknown", text.slice(0, 500) || resp.statusText, id, retryAfter);
}
