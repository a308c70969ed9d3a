//! `rota health`: the container health check (images without curl) and `rota --version`.

mod common;

use common::cli::{fails, ok, rota};

#[tokio::test(flavor = "multi_thread")]
async fn health_probes_healthz_and_readyz() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let live = ok(rota(&s.url).arg("health"));
    assert_eq!(
        live.trim(),
        format!("ok: {}/healthz answered 200 OK", s.url)
    );
    let ready = ok(rota(&s.url).args(["health", "--ready", "--timeout", "2s"]));
    assert_eq!(
        ready.trim(),
        format!("ok: {}/readyz answered 200 OK", s.url)
    );
}

#[test]
fn health_fails_when_nothing_answers() {
    let url = format!("http://127.0.0.1:{}", common::free_port());
    let err = fails(rota(&url).args(["health", "--ready"]));
    assert!(err.contains(&format!("{url}/readyz: no answer")), "{err}");
}

#[test]
fn health_fails_on_an_answer_other_than_200() {
    // A server that answers 503, as Rota's /readyz does when a part is down.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf);
        let body = r#"{"status":"unavailable"}"#;
        let _ = write!(
            conn,
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let err = fails(rota(&url).args(["health", "--ready"]));
    assert!(
        err.contains("answered 503 Service Unavailable") && err.contains("unavailable"),
        "{err}"
    );
}

#[test]
fn version_names_the_commit() {
    let out = ok(rota("http://127.0.0.1:1").arg("--version"));
    let commit = out
        .trim()
        .strip_prefix(&format!("rota {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `rota <version> (<commit>)`: {out}"));
    // `git rev-parse --short HEAD`, ROTA_BUILD_COMMIT, or `unknown` outside git.
    assert!(
        !commit.is_empty() && !commit.contains(char::is_whitespace),
        "{out}"
    );
}
