//! The dashboard in a real browser: Debian's Chromium, headless, driven through ChromeDriver
//! (WebDriver) against the real `rota serve` binary. A wrong key is refused; an admin signs in
//! and watches a queue's counts change as tasks are enqueued through the API (the page is not
//! reloaded); a dead task requeued from the dead-letter page is ready through the API; a
//! `reader` key sees no button that would change anything. Every page is photographed into
//! `target/dashboard-screenshots/` (and into `docs/dashboard/` with
//! `ROTA_UPDATE_SCREENSHOTS=1`, which is how the docs' images are made).

mod common;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use rota_client::{ClaimOptions, NewKey, NewTask};
use rota_core::TaskState;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_binary(env: &str, names: &[&str]) -> String {
    if let Ok(p) = std::env::var(env) {
        return p;
    }
    for n in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let p = format!("{dir}/{n}");
            if std::path::Path::new(&p).exists() {
                return p;
            }
        }
    }
    panic!(
        "no {} found: .ci/install-chromium installs Debian's chromium and chromium-driver \
         (or set {env})",
        names.join(" or ")
    );
}

async fn browser() -> (Driver, Browser) {
    let driver = find_binary("ROTA_CHROMEDRIVER", &["chromedriver"]);
    let chrome = find_binary("ROTA_CHROME", &["chromium", "chromium-browser", "chrome"]);
    let port = common::free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let guard = Driver(child);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chrome,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    loop {
        // ChromeDriver speaks plain HTTP on loopback.
        let http = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(http)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => return (guard, c),
            Err(e) if t.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot open a browser session: {e}"),
        }
    }
}

async fn shot(b: &Browser, name: &str) {
    let png = b.screenshot().await.unwrap();
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("ROTA_UPDATE_SCREENSHOTS").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
    }
}

/// Waits up to 10 s for `check` to hold.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !check().await {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(b: &Browser, css: &str) -> Option<String> {
    match b.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.ok(),
        Err(_) => None,
    }
}

/// Signs in with `token`; answers whether the dashboard let it in (else the sign-in page shows
/// why).
async fn sign_in(b: &Browser, url: &str, token: &str) -> bool {
    b.goto(&format!("{url}/login")).await.unwrap();
    let field = b.find(Locator::Id("token")).await.unwrap();
    field.send_keys(token).await.unwrap();
    b.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let home = || async { b.current_url().await.unwrap().path() == "/" };
    eventually("the sign-in answers", || async {
        home().await || has(b, "#login-error").await
    })
    .await;
    home().await
}

async fn has(b: &Browser, css: &str) -> bool {
    !b.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let (_driver, b) = browser().await;
    let url = s.url.clone();

    // A wrong key is refused, on the sign-in page.
    assert!(!sign_in(&b, &url, "rota_0123456789abcdef0123456789abcdef_nope").await);
    let refused = text(&b, "#login-error").await.unwrap_or_default();
    assert!(refused.contains("not valid"), "{refused}");
    shot(&b, "sign-in").await;

    // The admin signs in and watches the counts change with no reload.
    assert!(sign_in(&b, &url, &s.admin_token).await);
    let c = &s.client;
    c.enqueue(
        "emails",
        &NewTask::new("email.send", &serde_json::json!({"to": "ada"})),
    )
    .await
    .unwrap();
    b.goto(&format!("{url}/")).await.unwrap();
    let ready = "tr[data-queue=emails] td[data-state=ready]";
    eventually("the overview lists emails", || async {
        text(&b, ready).await.as_deref() == Some("1")
    })
    .await;
    for _ in 0..2 {
        c.enqueue(
            "emails",
            &NewTask::new("email.send", &serde_json::json!({})),
        )
        .await
        .unwrap();
    }
    eventually("the ready count follows the enqueues", || async {
        text(&b, ready).await.as_deref() == Some("3")
    })
    .await;
    shot(&b, "overview").await;

    // A dead task, requeued from the dead-letter page.
    let mut doomed = NewTask::new("report.build", &serde_json::json!({"month": 11}));
    doomed.max_attempts = Some(1);
    c.enqueue("reports", &doomed).await.unwrap();
    let claim = ClaimOptions {
        worker: "w1".into(),
        max: 1,
        ..Default::default()
    };
    let t = c.claim("reports", &claim).await.unwrap().remove(0);
    let lease = t.lease.as_ref().unwrap().token.clone();
    c.fail(t.id, &lease, "template missing", None, false)
        .await
        .unwrap();
    assert_eq!(c.get(t.id).await.unwrap().state, TaskState::Dead);
    b.goto(&format!("{url}/dead?queue=reports")).await.unwrap();
    shot(&b, "dead-letters").await;
    b.find(Locator::Css(&format!(
        "tr[data-task='{}'] input[type=checkbox]",
        t.id
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    b.find(Locator::XPath(
        "//button[normalize-space()='Requeue selected']",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    eventually("the requeued task is ready through the API", || async {
        c.get(t.id).await.unwrap().state == TaskState::Ready
    })
    .await;
    // The answer reloads the page (HX-Refresh); wait for that before going elsewhere, or the
    // reload could land after the next navigation.
    let row = format!("tr[data-task='{}']", t.id);
    eventually("the dead-letter page reloads without the task", || async {
        !has(&b, &row).await
    })
    .await;

    // The other pages, photographed.
    b.goto(&format!("{url}/queues/emails")).await.unwrap();
    assert!(has(&b, "button[hx-post='/queues/emails/pause']").await);
    shot(&b, "queue").await;
    b.goto(&format!("{url}/tasks/{}", t.id)).await.unwrap();
    assert!(text(&b, "#timeline")
        .await
        .unwrap()
        .contains("template missing"));
    shot(&b, "task").await;
    for page in ["workers", "schedules", "webhooks", "keys"] {
        b.goto(&format!("{url}/{page}")).await.unwrap();
        shot(&b, page).await;
    }

    // A reader sees everything and no control that would change anything.
    let reader = c
        .create_key(&NewKey {
            name: Some("viewer".into()),
            roles: vec!["reader".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    b.find(Locator::Css("button[hx-post='/logout']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually("signed out", || async {
        b.current_url().await.unwrap().path() == "/login"
    })
    .await;
    assert!(sign_in(&b, &url, &reader.token).await);
    for page in [
        "/".to_owned(),
        "/queues/emails".to_owned(),
        "/dead?queue=reports".to_owned(),
        format!("/tasks/{}", t.id),
    ] {
        b.goto(&format!("{url}{page}")).await.unwrap();
        assert!(has(&b, "main").await, "{page} renders for a reader");
        // Anything that would send a change (every change is an htmx POST).
        let actions = b
            .find_all(Locator::Css("main [hx-post], main input[type=checkbox]"))
            .await
            .unwrap();
        assert!(
            actions.is_empty(),
            "{page} offers a reader {} controls",
            actions.len()
        );
    }
    b.close().await.unwrap();
}
