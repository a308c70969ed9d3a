//! How an inbound webhook's request is proven, per provider, and what it tells of itself: the
//! provider's delivery id (the task's unique key) and its event and delivery headers (kept in
//! the task's payload). Every comparison of a secret or a signature is constant-time.

use hmac::{Hmac, Mac};
use rota_core::hooks::{HookRecord, Verify, MAX_DELIVERY_ID_LEN};
use rota_core::Timestamp;
use sha2::Sha256;
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;

/// Why a request was refused; `code` is the error code and the event's reason starts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// What a verified request says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// The provider's id of this delivery, the same on a redelivery.
    pub delivery: Option<String>,
    /// The provider's event and delivery headers, names in lowercase.
    pub headers: BTreeMap<String, String>,
}

/// The headers each provider's tasks keep (lowercase), and the one whose value is the delivery
/// id (the first present).
fn kept(verify: Verify) -> (&'static [&'static str], &'static [&'static str]) {
    match verify {
        Verify::Github => (
            &[
                "x-github-event",
                "x-github-delivery",
                "x-github-hook-id",
                "x-github-hook-installation-target-id",
                "x-github-hook-installation-target-type",
            ],
            &["x-github-delivery"],
        ),
        Verify::Gitlab => (
            &[
                "x-gitlab-event",
                "x-gitlab-event-uuid",
                "x-gitlab-webhook-uuid",
                "x-gitlab-instance",
                "idempotency-key",
            ],
            // Idempotency-Key stays the same when GitLab retries a delivery; the event UUID
            // is what older GitLab versions send.
            &["idempotency-key", "x-gitlab-event-uuid"],
        ),
        Verify::HmacSha256 => (
            &[
                "rota-webhook-id",
                "rota-delivery-id",
                "rota-timestamp",
                "idempotency-key",
            ],
            &["idempotency-key"],
        ),
        Verify::Stripe => (&[], &[]),
    }
}

/// Checks `body` with the headers `header` gives (by lowercase name) against `hook`'s secrets
/// at `now`, allowing signed timestamps `window_s` seconds either way.
pub fn verify(
    hook: &HookRecord,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    now: Timestamp,
    window_s: i64,
) -> Result<Verified, Rejection> {
    let secrets = hook.secrets(now);
    match hook.verify {
        Verify::Github => {
            let sig = header("x-hub-signature-256")
                .ok_or_else(|| reject("missing_signature", "no X-Hub-Signature-256 header"))?;
            let hex = sig.strip_prefix("sha256=").ok_or_else(|| {
                reject(
                    "bad_signature",
                    "X-Hub-Signature-256 does not start with sha256=",
                )
            })?;
            let given = decode_hex(hex)
                .ok_or_else(|| reject("bad_signature", "X-Hub-Signature-256 is not hex"))?;
            if !secrets.iter().any(|s| mac_matches(s, &[body], &given)) {
                return Err(reject(
                    "bad_signature",
                    "X-Hub-Signature-256 does not match the body and the hook's secret",
                ));
            }
        }
        Verify::Gitlab => {
            let token = header("x-gitlab-token")
                .ok_or_else(|| reject("missing_signature", "no X-Gitlab-Token header"))?;
            if !secrets
                .iter()
                .any(|s| bool::from(s.as_bytes().ct_eq(token.as_bytes())))
            {
                return Err(reject(
                    "bad_signature",
                    "X-Gitlab-Token is not the hook's secret token",
                ));
            }
        }
        Verify::HmacSha256 => {
            let ts = header("rota-timestamp")
                .ok_or_else(|| reject("missing_signature", "no Rota-Timestamp header"))?;
            let sig = header("rota-signature")
                .ok_or_else(|| reject("missing_signature", "no Rota-Signature header"))?;
            let t = fresh(&ts, now, window_s, "Rota-Timestamp")?;
            let given: Vec<Vec<u8>> = sig
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("v1="))
                .filter_map(decode_hex)
                .collect();
            check_timestamped(&secrets, t, body, &given, "Rota-Signature")?;
        }
        Verify::Stripe => {
            let sig = header("stripe-signature")
                .ok_or_else(|| reject("missing_signature", "no Stripe-Signature header"))?;
            let mut t = None;
            let mut given = Vec::new();
            for part in sig.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = Some(v.to_owned()),
                    Some(("v1", v)) => given.extend(decode_hex(v)),
                    _ => {}
                }
            }
            let t =
                t.ok_or_else(|| reject("bad_signature", "Stripe-Signature has no t= timestamp"))?;
            let t = fresh(&t, now, window_s, "Stripe-Signature's t")?;
            check_timestamped(&secrets, t, body, &given, "Stripe-Signature")?;
        }
    }
    let (names, ids) = kept(hook.verify);
    let mut headers = BTreeMap::new();
    for name in names {
        if let Some(v) = header(name) {
            headers.insert((*name).to_owned(), v);
        }
    }
    let mut delivery = ids.iter().find_map(|n| header(n));
    if hook.verify == Verify::HmacSha256 && delivery.is_none() {
        // Rota's own webhooks: a delivery is unique per webhook.
        if let (Some(w), Some(d)) = (header("rota-webhook-id"), header("rota-delivery-id")) {
            delivery = Some(format!("{w}/{d}"));
        }
    }
    if hook.verify == Verify::Stripe {
        // A Stripe event's id is in its body, the same on every retry.
        delivery = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
    }
    if let Some(d) = &delivery {
        if d.is_empty() || d.len() > MAX_DELIVERY_ID_LEN || d.chars().any(char::is_control) {
            return Err(reject(
                "bad_delivery_id",
                format!(
                    "the delivery id must be 1 to {MAX_DELIVERY_ID_LEN} characters without \
                     control characters"
                ),
            ));
        }
    }
    Ok(Verified { delivery, headers })
}

/// The timestamp `ts` (unix seconds) when it is within `window_s` of `now`.
fn fresh(ts: &str, now: Timestamp, window_s: i64, what: &str) -> Result<i64, Rejection> {
    let t: i64 = ts
        .trim()
        .parse()
        .map_err(|_| reject("bad_signature", format!("{what} is not unix seconds")))?;
    let now_s = now.0.div_euclid(1000);
    if (now_s - t).abs() > window_s {
        return Err(reject(
            "stale_timestamp",
            format!("{what} is {}s from the server's clock; at most {window_s}s is accepted (a replay, or a clock that is off)", now_s - t),
        ));
    }
    Ok(t)
}

/// Whether one of `given` is `HMAC(secret, "<t>.<body>")` for one of `secrets`.
fn check_timestamped(
    secrets: &[&str],
    t: i64,
    body: &[u8],
    given: &[Vec<u8>],
    what: &str,
) -> Result<(), Rejection> {
    if given.is_empty() {
        return Err(reject(
            "bad_signature",
            format!("{what} has no v1= signature"),
        ));
    }
    let t = t.to_string();
    let parts: [&[u8]; 3] = [t.as_bytes(), b".", body];
    if secrets
        .iter()
        .any(|s| given.iter().any(|g| mac_matches(s, &parts, g)))
    {
        Ok(())
    } else {
        Err(reject(
            "bad_signature",
            format!("{what} does not match the timestamp, the body and the hook's secret"),
        ))
    }
}

fn mac_matches(secret: &str, parts: &[&[u8]], given: &[u8]) -> bool {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    for p in parts {
        m.update(p);
    }
    m.verify_slice(given).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || s.len() > 256 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rota_core::hooks::HookRecord;

    fn hook(verify: Verify, secret: &str) -> HookRecord {
        HookRecord {
            id: "hk_1".into(),
            tenant: "default".into(),
            name: "h".into(),
            queue: "q".into(),
            kind: "k".into(),
            verify,
            secret: secret.into(),
            previous_secret: None,
            previous_until: None,
            enabled: true,
            description: None,
            owner: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn headers<'a>(h: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
    }

    #[test]
    fn github_documents_this_signature() {
        // docs.github.com, "Validating webhook deliveries": secret "It's a Secret to
        // Everybody", payload "Hello, World!".
        let h = hook(Verify::Github, "It's a Secret to Everybody");
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let got = verify(
            &h,
            headers(&[
                ("x-hub-signature-256", sig),
                ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                ("x-github-event", "push"),
            ]),
            b"Hello, World!",
            Timestamp(0),
            300,
        )
        .unwrap();
        assert_eq!(
            got.delivery.as_deref(),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        assert_eq!(got.headers["x-github-event"], "push");
        let bad = verify(
            &h,
            headers(&[("x-hub-signature-256", sig)]),
            b"Hello, World?",
            Timestamp(0),
            300,
        );
        assert_eq!(bad.unwrap_err().code, "bad_signature");
        let none = verify(&h, headers(&[]), b"Hello, World!", Timestamp(0), 300);
        assert_eq!(none.unwrap_err().code, "missing_signature");
    }

    #[test]
    fn gitlab_sends_the_token_itself() {
        let h = hook(Verify::Gitlab, "gitlab-secret-token-1");
        let ok = verify(
            &h,
            headers(&[
                ("x-gitlab-token", "gitlab-secret-token-1"),
                ("x-gitlab-event", "Push Hook"),
                ("idempotency-key", "f4cbb3c2-9c43-4ee3-a8c1-4c8bb8ee4c1a"),
            ]),
            b"{}",
            Timestamp(0),
            300,
        )
        .unwrap();
        assert_eq!(
            ok.delivery.as_deref(),
            Some("f4cbb3c2-9c43-4ee3-a8c1-4c8bb8ee4c1a")
        );
        let bad = verify(
            &h,
            headers(&[("x-gitlab-token", "gitlab-secret-token-2")]),
            b"{}",
            Timestamp(0),
            300,
        );
        assert_eq!(bad.unwrap_err().code, "bad_signature");
    }

    #[test]
    fn timestamped_signatures_refuse_replays() {
        let now = Timestamp(1_700_000_000_000);
        let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
        let secret = "whsec_0123456789abcdef";
        let sig = |t: i64| crate::webhooks::sign(secret, t, body);
        // Stripe.
        let h = hook(Verify::Stripe, secret);
        let header = format!("t=1700000000,v1={},v0=00", sig(1_700_000_000));
        let ok = verify(
            &h,
            headers(&[("stripe-signature", &header)]),
            body,
            now,
            300,
        )
        .unwrap();
        assert_eq!(ok.delivery.as_deref(), Some("evt_1"));
        let old = format!("t=1699999000,v1={}", sig(1_699_999_000));
        let stale = verify(&h, headers(&[("stripe-signature", &old)]), body, now, 300);
        assert_eq!(stale.unwrap_err().code, "stale_timestamp");
        // Rota's own webhooks (v1 of Rota-Signature).
        let h = hook(Verify::HmacSha256, secret);
        let rota = format!("v1={},v2=ff", sig(1_700_000_010));
        let ok = verify(
            &h,
            headers(&[
                ("rota-timestamp", "1700000010"),
                ("rota-signature", &rota),
                ("rota-webhook-id", "wh_1"),
                ("rota-delivery-id", "42"),
            ]),
            body,
            now,
            300,
        )
        .unwrap();
        assert_eq!(ok.delivery.as_deref(), Some("wh_1/42"));
        let moved = verify(
            &h,
            headers(&[("rota-timestamp", "1700000011"), ("rota-signature", &rota)]),
            body,
            now,
            300,
        );
        assert_eq!(moved.unwrap_err().code, "bad_signature");
    }

    #[test]
    fn the_previous_secret_proves_during_the_grace() {
        let mut h = hook(Verify::Gitlab, "the-new-secret-0001");
        h.previous_secret = Some("the-old-secret-0001".into());
        h.previous_until = Some(Timestamp(10));
        let old = headers(&[("x-gitlab-token", "the-old-secret-0001")]);
        assert!(verify(&h, &old, b"", Timestamp(9), 300).is_ok());
        assert!(verify(&h, &old, b"", Timestamp(10), 300).is_err());
    }
}
