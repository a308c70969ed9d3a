import { createHmac, timingSafeEqual } from "node:crypto";

/** The headers of a delivery, by lowercase name (as Node's `IncomingMessage.headers` has them). */
export type DeliveryHeaders = Record<string, string | string[] | undefined> | Headers;

export interface VerifyOptions {
  /** The webhook's secret (or the tenant's callback secret); several during a rotation. */
  secret: string | string[];
  /** The URL the delivery was sent to, exactly as registered (the webhook's `url`). */
  url: string;
  /** Largest difference between `Rota-Timestamp` and now, in seconds. Default 300. */
  toleranceS?: number;
  /** The clock, in ms since the epoch. Default `Date.now()`. */
  now?: number;
}

/** A delivery that passed {@link verifyDelivery}. */
export interface VerifiedDelivery {
  deliveryId: string;
  webhookId: string;
  timestamp: number;
}

/** Why {@link verifyDelivery} refused a request. */
export class SignatureError extends Error {
  override readonly name = "SignatureError";
}

function header(headers: DeliveryHeaders, name: string): string | undefined {
  const value = headers instanceof Headers ? headers.get(name) ?? undefined : headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Checks a webhook or task-result delivery as a receiver must: a `v2` signature over
 * `<timestamp>\n<delivery id>\n<webhook id>\n<url>\n<body>` with one of the secrets, and a
 * timestamp within the tolerance. Throws {@link SignatureError} otherwise. Pass the body as the
 * exact bytes received, before any JSON parsing. Deduplicate by the returned `deliveryId`.
 */
export function verifyDelivery(body: string | Uint8Array, headers: DeliveryHeaders, options: VerifyOptions): VerifiedDelivery {
  const ts = header(headers, "rota-timestamp");
  const deliveryId = header(headers, "rota-delivery-id");
  const webhookId = header(headers, "rota-webhook-id");
  const signature = header(headers, "rota-signature");
  if (!ts || !deliveryId || !webhookId || !signature) {
    throw new SignatureError("not a Rota delivery: a Rota-Timestamp, Rota-Delivery-Id, Rota-Webhook-Id or Rota-Signature header is missing");
  }
  const timestamp = Number(ts);
  const now = (options.now ?? Date.now()) / 1000;
  if (!Number.isInteger(timestamp) || Math.abs(now - timestamp) > (options.toleranceS ?? 300)) {
    throw new SignatureError(`Rota-Timestamp ${ts} is too far from this clock: a replayed or delayed request`);
  }
  const given = signature
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("v2="))
    .map((s) => Buffer.from(s.slice(3), "hex"));
  const secrets = Array.isArray(options.secret) ? options.secret : [options.secret];
  const head = `${ts}\n${deliveryId}\n${webhookId}\n${options.url}\n`;
  for (const secret of secrets) {
    const want = createHmac("sha256", secret).update(head).update(body).digest();
    if (given.some((got) => got.length === want.length && timingSafeEqual(got, want))) {
      return { deliveryId, webhookId, timestamp };
    }
  }
  throw new SignatureError("no v2 signature matches: wrong secret or URL, or the request was changed");
}
