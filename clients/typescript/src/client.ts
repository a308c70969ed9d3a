import { Audit } from "./audit.js";
import { Batches } from "./batches.js";
import { Keys, MaintenanceMode, Roles, Tenants, whoami } from "./admin.js";
import { Events } from "./events.js";
import { Hooks } from "./hooks.js";
import { type CallOptions, type ClientOptions, Transport } from "./http.js";
import { type AccessToken, type ClientCredentials, requestToken } from "./oauth.js";
import { Processes } from "./processes.js";
import { Queues } from "./queues.js";
import { Schedules } from "./schedules.js";
import { Tasks } from "./tasks.js";
import type { DoctorReport, Readiness, WhoAmI } from "./types.js";
import { Webhooks } from "./webhooks.js";
import { Workflows } from "./workflows.js";

/**
 * A client for Rota's HTTP API. Every call is async; an error answer rejects with a
 * `RotaError` (status, code, message), a request that got no answer with a `TransportError`.
 * Reads are retried when the server cannot be reached; writes never are.
 *
 * ```ts
 * const rota = new RotaClient(); // ROTA_URL, ROTA_TOKEN
 * const task = await rota.tasks.enqueue("emails", { kind: "send", payload: { to: "ada@example.com" } });
 * ```
 *
 * With `clientCredentials` (an API key's id and token) instead of a `token`, the client
 * authenticates with OAuth 2.0 access tokens that it fetches and renews itself.
 */
export class RotaClient {
  readonly tasks: Tasks;
  readonly queues: Queues;
  readonly schedules: Schedules;
  readonly webhooks: Webhooks;
  /** Inbound webhooks: a provider's requests that become tasks. */
  readonly hooks: Hooks;
  readonly workflows: Workflows;
  readonly batches: Batches;
  readonly events: Events;
  readonly tenants: Tenants;
  readonly keys: Keys;
  readonly roles: Roles;
  readonly maintenance: MaintenanceMode;
  /** The audit log: every administrative change, newest first. */
  readonly audit: Audit;
  /** Worker processes connected through the Faktory door. */
  readonly processes: Processes;
  private readonly http: Transport;

  constructor(options: ClientOptions = {}) {
    this.http = new Transport(options);
    this.tasks = new Tasks(this.http);
    this.queues = new Queues(this.http);
    this.schedules = new Schedules(this.http);
    this.webhooks = new Webhooks(this.http);
    this.hooks = new Hooks(this.http);
    this.workflows = new Workflows(this.http);
    this.batches = new Batches(this.http);
    this.events = new Events(this.http);
    this.tenants = new Tenants(this.http);
    this.keys = new Keys(this.http);
    this.roles = new Roles(this.http);
    this.maintenance = new MaintenanceMode(this.http);
    this.audit = new Audit(this.http);
    this.processes = new Processes(this.http);
  }

  /** The server this client talks to. */
  get url(): string {
    return this.http.baseUrl;
  }

  /**
   * Exchanges an API key's id and whole token for an access token (`POST /oauth/token`, the
   * OAuth 2.0 client credentials grant), narrowed to `scope` when given; sent without this
   * client's own credential. A refusal rejects with a `RotaError` whose `code` is OAuth's
   * `error`: 401 `invalid_client` (a wrong id or secret, a revoked or expired key), 400
   * `invalid_scope`, `invalid_request` or `unsupported_grant_type`, 429 after too many failures.
   */
  fetchToken(credentials: ClientCredentials, call?: CallOptions): Promise<AccessToken> {
    return requestToken(this.http, credentials, call);
  }

  /** Who the credential is, and which tenant it acts in. */
  whoami(call?: CallOptions): Promise<WhoAmI> {
    return whoami(this.http, call);
  }

  /** Findings about the tenant (or one queue): stuck queues, saturated writers, … */
  doctor(queue?: string, call?: CallOptions): Promise<DoctorReport> {
    return this.http.json({ method: "GET", path: "/v1/doctor", query: { queue } }, call);
  }

  /** True while the server answers `GET /healthz`. */
  async healthy(call?: CallOptions): Promise<boolean> {
    try {
      await this.http.send({ method: "GET", path: "/healthz" }, call);
      return true;
    } catch {
      return false;
    }
  }

  /** The store's readiness, part by part (a 503 answer included). */
  async ready(call?: CallOptions): Promise<Readiness> {
    const resp = await this.http.send({ method: "GET", path: "/readyz", accept: [503] }, call);
    return (await resp.json()) as Readiness;
  }

  /** The Prometheus metrics as text. */
  async metrics(call?: CallOptions): Promise<string> {
    return (await this.http.send({ method: "GET", path: "/metrics" }, call)).text();
  }

  /** The server's OpenAPI document. */
  openapi(call?: CallOptions): Promise<Record<string, unknown>> {
    return this.http.json({ method: "GET", path: "/openapi.json" }, call);
  }
}
