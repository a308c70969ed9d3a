//! Dashboard sessions and event tickets against someone who holds the store (a leaked database
//! or backup), forges a longer life, or replays a cookie after signing out; the rotation of the
//! session secret; and the dashboard's response headers, cross-site sign-in and `Secure`.

mod helpers;

use helpers::*;
use hmac::{Hmac, Mac};
use rota_server::auth::{Secret, SESSION_TTL_MS, TICKET_TTL_MS};
use rota_server::ServerConfig;
use rota_store::Store;
use serde_json::json;
use sha2::Sha256;

const SECRET: &str = "session-secret-for-tests-0123456789abcdef";
const PREVIOUS: &str = "the-secret-before-rotation-0123456789abcdef";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn mac(secret: &[u8], what: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    m.update(what.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A session as a server makes one, signed with `secret`.
fn session(secret: &[u8], key: &str, issued: i64, expires: i64) -> String {
    let m = mac(
        secret,
        &format!("rota-dashboard-session\n{key}\n{issued}\n{expires}"),
    );
    format!("rds_{key}_{issued}_{expires}_{m}")
}

/// A ticket as a server makes one, signed with `secret`.
fn ticket(secret: &[u8], key: &str, tenant: &str, expires: i64) -> String {
    let m = mac(
        secret,
        &format!("rota-events-ticket\n{key}\n{tenant}\n{expires}"),
    );
    format!("rtk_{key}_{expires}_{m}_{tenant}")
}

async fn sign_in(s: &TestServer, token: &str) -> reqwest::Response {
    http()
        .post(format!("{}/login", s.url))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("rota_session="))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .filter(|v| !v.is_empty())
}

/// The status of the overview page with `session`: 200 signed in, 303 to sign-in.
async fn page(s: &TestServer, session: &str) -> u16 {
    http()
        .get(format!("{}/", s.url))
        .header("cookie", format!("rota_session={session}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn stream(s: &TestServer, ticket: &str) -> u16 {
    http()
        .get(format!("{}/v1/events/stream?ticket={ticket}", s.url))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn with_secret() -> TestServer {
    let mut config = ServerConfig::default();
    config.auth.session_secret = Some(Secret(SECRET.into()));
    config.auth.session_secret_previous = Some(Secret(PREVIOUS.into()));
    TestServer::with_config(config).await
}

async fn admin_key(s: &TestServer) -> (String, String) {
    let k = s.post("/v1/keys", json!({"roles": ["admin"]})).await;
    assert_eq!(k.status, 201, "{}", k.body);
    (
        k.body["id"].as_str().unwrap().to_owned(),
        k.body["token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_stored_key_hash_signs_no_session_and_no_ticket() {
    let s = TestServer::start().await;
    let (id, token) = admin_key(&s).await;
    // What a leaked database or backup holds: the key's stored hash.
    let stored = s.store.load_auth().await.unwrap();
    let hash = &stored.keys.iter().find(|k| k.id == id).unwrap().hash;
    let hex = hash.strip_prefix("v2:").unwrap_or(hash);
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let now = T0;
    let later = now + SESSION_TTL_MS / 2;
    // Sessions signed with the hash, in the scheme before this fix and in today's.
    let old_scheme = {
        let m = mac(&bytes, &format!("rota-dashboard-session\n{id}\n{}", later));
        format!("rds_{id}_{later}_{m}")
    };
    assert_eq!(page(&s, &old_scheme).await, 303, "an old-scheme forgery");
    assert_eq!(page(&s, &session(&bytes, &id, now, later)).await, 303);
    let forged = ticket(&bytes, &id, "default", now + TICKET_TTL_MS / 2);
    assert_eq!(stream(&s, &forged).await, 401);
    // The key itself still signs in, and its real session works.
    let real = session_cookie(&sign_in(&s, &token).await).expect("a session");
    assert_eq!(page(&s, &real).await, 200);
}

#[tokio::test]
async fn a_session_or_ticket_claiming_a_longer_life_is_refused_despite_its_mac() {
    let s = with_secret().await;
    let (id, _) = admin_key(&s).await;
    let secret = SECRET.as_bytes();
    let now = T0;
    // Made as a server makes them: accepted (the forgeries below differ only in `expires`).
    assert_eq!(
        page(&s, &session(secret, &id, now, now + SESSION_TTL_MS)).await,
        200
    );
    let t = ticket(secret, &id, "default", now + TICKET_TTL_MS);
    assert_eq!(stream(&s, &t).await, 200);
    // Valid until 2100, or a day past the lifetime.
    let y2100 = 4_102_444_800_000;
    assert_eq!(page(&s, &session(secret, &id, now, y2100)).await, 303);
    assert_eq!(
        page(
            &s,
            &session(secret, &id, now, now + SESSION_TTL_MS + 86_400_000)
        )
        .await,
        303
    );
    assert_eq!(
        page(&s, &session(secret, &id, y2100 - SESSION_TTL_MS, y2100)).await,
        303,
        "issued in the future"
    );
    assert_eq!(
        stream(&s, &ticket(secret, &id, "default", y2100)).await,
        401
    );
    assert_eq!(
        stream(&s, &ticket(secret, &id, "default", now + 86_400_000)).await,
        401
    );
}

#[tokio::test]
async fn the_previous_secret_still_checks_and_any_other_does_not() {
    let s = with_secret().await;
    let (id, _) = admin_key(&s).await;
    let until = T0 + SESSION_TTL_MS;
    assert_eq!(
        page(&s, &session(PREVIOUS.as_bytes(), &id, T0, until)).await,
        200
    );
    let other = b"some-other-secret-entirely-0123456789abcdef";
    assert_eq!(page(&s, &session(other, &id, T0, until)).await, 303);
    let t = ticket(PREVIOUS.as_bytes(), &id, "default", T0 + TICKET_TTL_MS);
    assert_eq!(stream(&s, &t).await, 200);
}

#[tokio::test]
async fn signing_out_ends_every_session_of_the_key_even_replayed() {
    let s = TestServer::start().await;
    let (_, token) = admin_key(&s).await;
    let first = session_cookie(&sign_in(&s, &token).await).unwrap();
    s.clock.advance_ms(1);
    let second = session_cookie(&sign_in(&s, &token).await).unwrap();
    assert_ne!(first, second);
    let (_, other_token) = admin_key(&s).await;
    let other = session_cookie(&sign_in(&s, &other_token).await).unwrap();
    assert_eq!(page(&s, &first).await, 200);
    let out = http()
        .post(format!("{}/logout", s.url))
        .header("cookie", format!("rota_session={first}"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(out.headers()["hx-redirect"], "/login");
    // The cookie the browser dropped, sent again, and the key's other session: refused.
    assert_eq!(
        page(&s, &first).await,
        303,
        "a replayed cookie after sign-out"
    );
    assert_eq!(page(&s, &second).await, 303, "another session of the key");
    // Another key's session is untouched, and signing in again (same millisecond) works.
    assert_eq!(page(&s, &other).await, 200);
    let again = session_cookie(&sign_in(&s, &token).await).unwrap();
    assert_eq!(page(&s, &again).await, 200);
    // The admin token's sessions end the same way.
    let admin = session_cookie(&sign_in(&s, ADMIN).await).unwrap();
    http()
        .post(format!("{}/logout", s.url))
        .header("cookie", format!("rota_session={admin}"))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(page(&s, &admin).await, 303);
}

#[tokio::test]
async fn dashboard_pages_refuse_framing_sniffing_and_cross_site_sign_in() {
    let s = TestServer::start().await;
    for path in ["/login", "/", "/assets/dashboard.css"] {
        let r = http().get(format!("{}{path}", s.url)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["content-security-policy"], "frame-ancestors 'none'");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
    }
    let post = |headers: Vec<(&'static str, String)>| {
        let mut r = http()
            .post(format!("{}/login", s.url))
            .form(&[("token", ADMIN)]);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let host = s.url.trim_start_matches("http://").to_owned();
    for refused in [
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
        vec![("origin", "https://evil.example".to_owned())],
        vec![("origin", "null".to_owned())],
    ] {
        let r = post(refused.clone()).await.unwrap();
        assert_eq!(r.status(), 403, "{refused:?}");
        assert!(session_cookie(&r).is_none());
    }
    for allowed in [
        vec![("sec-fetch-site", "same-origin".to_owned())],
        vec![("origin", format!("http://{host}"))],
        vec![],
    ] {
        let r = post(allowed.clone()).await.unwrap();
        assert_eq!(r.status(), 303, "{allowed:?}");
        assert!(session_cookie(&r).is_some());
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_behind_tls() {
    let plain = TestServer::start().await;
    let cookies = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let r = sign_in(&plain, ADMIN).await;
    assert!(cookies(&r).iter().all(|c| !c.contains("Secure")));
    // Told by the proxy in front that the browser came over HTTPS.
    let r = http()
        .post(format!("{}/login", plain.url))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN)])
        .send()
        .await
        .unwrap();
    assert!(!cookies(&r).is_empty());
    assert!(cookies(&r).iter().all(|c| c.ends_with("; Secure")));
    // Or configured so.
    let mut config = ServerConfig::default();
    config.dashboard.secure_cookie = true;
    let secure = TestServer::with_config(config).await;
    let r = sign_in(&secure, ADMIN).await;
    let set = cookies(&r);
    assert!(set.iter().any(|c| c.starts_with("rota_session=")));
    assert!(set.iter().all(|c| c.ends_with("; Secure")), "{set:?}");
}

#[tokio::test]
async fn an_admin_ends_a_keys_sessions_through_the_api_and_the_key_keeps_working() {
    let s = TestServer::start().await;
    let (id, token) = admin_key(&s).await;
    let session = session_cookie(&sign_in(&s, &token).await).unwrap();
    assert_eq!(page(&s, &session).await, 200);
    let reader = s.post("/v1/keys", json!({"roles": ["reader"]})).await;
    let reader = reader.body["token"].as_str().unwrap().to_owned();
    let path = format!("/v1/keys/{id}/sessions/revoke");
    s.send_as(Some(&reader), "POST", &path, None)
        .await
        .assert_error(403, "forbidden");
    assert_eq!(
        page(&s, &session).await,
        200,
        "a refused request ends nothing"
    );
    s.send("POST", "/v1/keys/0123456789abcdef/sessions/revoke", None)
        .await
        .assert_error(404, "not_found");
    let ended = s.send("POST", &path, None).await;
    assert_eq!(ended.status, 200, "{}", ended.body);
    assert_eq!(ended.body["id"], id);
    assert_eq!(page(&s, &session).await, 303);
    // The key itself still works, and signs in again.
    assert_eq!(
        s.send_as(Some(&token), "GET", "/v1/whoami", None)
            .await
            .status,
        200
    );
    let again = session_cookie(&sign_in(&s, &token).await).unwrap();
    assert_eq!(page(&s, &again).await, 200);
}
