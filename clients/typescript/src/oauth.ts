// OAuth 2.0 client credentials (`POST /oauth/token`): an API key's id and token exchanged for
// short-lived access tokens, and the cache behind a client built with `clientCredentials`.

import type { CallOptions, Transport } from "./http.js";

/** An API key as an OAuth client: for `RotaClient.fetchToken` and `ClientOptions.clientCredentials`. */
export interface ClientCredentials {
  /** The API key's id. */
  clientId: string;
  /** The API key's whole token, `rota_<id>_<secret>`. */
  clientSecret: string;
  /**
   * What the access token is narrowed to: actions (`tasks:claim`, `tasks:*`) and queue patterns
   * (`queues/emails-*`), space-separated or listed. Left out: all the key's roles allow.
   */
  scope?: string | readonly string[];
}

/** `POST /oauth/token`'s answer: send `access_token` as `Authorization: Bearer`. */
export interface AccessToken {
  /** A JWT that acts as its API key, narrowed to `scope`. */
  access_token: string;
  /** `Bearer`. */
  token_type: string;
  /** Seconds it lasts from when it was issued. */
  expires_in: number;
  /** What it may do (space-separated): the scope asked for, or the actions the key's roles allow. */
  scope: string;
}

/** A token is replaced this long before it ends (at most half its life before), in ms. */
export const REFRESH_MARGIN_MS = 60_000;

/** Asks the token endpoint for an access token, without the client's own credential. */
export function requestToken(http: Transport, credentials: ClientCredentials, call?: CallOptions): Promise<AccessToken> {
  const { clientId, clientSecret, scope } = credentials;
  const form: Record<string, string> = { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret };
  if (scope !== undefined) form.scope = typeof scope === "string" ? scope : scope.join(" ");
  return http.json({ method: "POST", path: "/oauth/token", form, anonymous: true }, call);
}

/**
 * The access token of a client built with client credentials: fetched on first use and again
 * once it is within {@link REFRESH_MARGIN_MS} of its end (or half its life, for a short one).
 * One fetch runs at a time; the requests that need a token meanwhile wait for it.
 */
export class AccessTokens {
  private current: { token: string; refreshAt: number } | undefined;
  private pending: Promise<string> | undefined;

  constructor(private readonly fetchToken: () => Promise<AccessToken>) {}

  /** The token to send, fetched first when there is none or it is about to end. */
  token(): Promise<string> {
    if (this.current && Date.now() < this.current.refreshAt) return Promise.resolve(this.current.token);
    this.pending ??= this.refresh().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /** A request sent with `token` was answered 401: the next {@link token} fetches a new one, unless another request has already. */
  refused(token: string): void {
    if (this.current?.token === token) this.current = undefined;
  }

  private async refresh(): Promise<string> {
    const started = Date.now();
    const got = await this.fetchToken();
    const lifeMs = got.expires_in * 1000;
    this.current = { token: got.access_token, refreshAt: started + lifeMs - Math.min(REFRESH_MARGIN_MS, lifeMs / 2) };
    return got.access_token;
  }
}
