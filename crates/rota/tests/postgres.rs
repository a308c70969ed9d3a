//! Several real `rota serve` processes on one PostgreSQL database (a throwaway server this
//! test binary starts): one first admin key however many start at once, wake-ups across
//! servers, access-control changes everywhere within a second (a new key at once, a
//! sign-out within a second), and SIGKILL of one server under load losing nothing
//! acknowledged.

mod common;

use common::{finish_start, spawn_with, start_with, wait_healthy, Server};
use rota_client::{ClaimOptions, Client, NewTask, QueueSettingsPatch};
use rota_postgres::testing::TestCluster;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const ADMIN: &str = "pg-test-admin-token-0123456789abcdef0123456789";

async fn database() -> String {
    tokio::task::spawn_blocking(|| TestCluster::shared().create_database())
        .await
        .unwrap()
}

async fn server(url: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(
        dir.path(),
        &[("ROTA_DATABASE_URL", url), ("ROTA_ADMIN_TOKEN", ADMIN)],
    )
    .await;
    (dir, s)
}

/// How long a change made on one server may take to reach another: docs/security.md promises
/// a second (it takes milliseconds; each test prints what it saw). These tests once failed
/// now and then even with three: the server's reload of access data missed a notification that
/// landed while it was reloading (background::on_each_signal now listens before reloading).
const PROPAGATION: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_create_one_first_admin_key() {
    let url = database().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let spawned: Vec<_> = dirs
        .iter()
        .map(|d| spawn_with(d.path(), &[("ROTA_DATABASE_URL", url.as_str())]))
        .collect();
    let mut servers = Vec::new();
    let mut creators = 0;
    for ((child, u), d) in spawned.into_iter().zip(&dirs) {
        wait_healthy(&u).await;
        if d.path().join("admin-token").exists() {
            creators += 1;
            servers.push(finish_start(child, u, d.path()));
        } else {
            servers.push(Server {
                child,
                client: Client::new(&u).unwrap(),
                url: u,
                dir: d.path().to_owned(),
                admin_token: String::new(),
            });
        }
    }
    assert_eq!(
        creators, 1,
        "exactly one server created the first admin key"
    );
    let admin = servers.iter().find(|s| !s.admin_token.is_empty()).unwrap();
    // Every server knows the one key.
    for s in &servers {
        let c = Client::with_token(&s.url, Some(&admin.admin_token)).unwrap();
        assert_eq!(c.keys().await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_on_one_server_wakes_a_claim_waiting_on_another() {
    let url = database().await;
    let (_da, a) = server(&url).await;
    let (_db, b) = server(&url).await;
    let mut latencies = Vec::new();
    for i in 0..30 {
        let bc = b.client.clone();
        let waiter = tokio::spawn(async move {
            let opts = ClaimOptions {
                worker: "w".into(),
                max: 1,
                wait_ms: Some(5_000),
                ..Default::default()
            };
            let got = bc.claim("wake", &opts).await.unwrap();
            (Instant::now(), got.len())
        });
        // Let the claim reach B and start waiting.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent = Instant::now();
        a.client
            .enqueue("wake", &NewTask::new("x", &serde_json::json!({ "i": i })))
            .await
            .unwrap();
        let (woke, n) = waiter.await.unwrap();
        assert_eq!(n, 1, "the waiting claim got the task");
        latencies.push(woke.duration_since(sent));
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    eprintln!(
        "enqueue on A -> claim returns on B: p50 {p50:?}, max {:?}",
        latencies.last().unwrap()
    );
    // Claims wait up to 5 s and never poll, so answering within 100 ms means woken (typical
    // here: 2-4 ms; 14 ms on a loaded CI machine, which failed a 10 ms bound).
    assert!(p50 < Duration::from_millis(100), "p50 {p50:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_server_applies_on_another_within_a_second() {
    let url = database().await;
    let (_da, a) = server(&url).await;
    let (_db, b) = server(&url).await;
    let created = a
        .client
        .create_key(&rota_core::auth::NewKey {
            name: Some("doomed".into()),
            roles: vec!["producer".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let on_b = Client::with_token(&b.url, Some(&created.token)).unwrap();
    // Known on B shortly after its creation on A.
    let t = Instant::now();
    while on_b.whoami().await.is_err() {
        assert!(t.elapsed() < PROPAGATION, "the new key is unknown on B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.client.revoke_key(&created.key.id).await.unwrap();
    let t = Instant::now();
    while on_b.whoami().await.is_ok() {
        assert!(
            t.elapsed() < PROPAGATION,
            "the revoked key still works on B after {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("revocation reached the other server in {:?}", t.elapsed());
}

/// `rota_auth_key_lookups_total` on `s`: how often it read a key it did not know from the store.
async fn key_lookups(s: &Server) -> u64 {
    let text = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("rota_auth_key_lookups_total "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_on_one_server_works_on_another_at_once() {
    let url = database().await;
    let (_da, a) = server(&url).await;
    let (_db, b) = server(&url).await;
    for i in 0..20 {
        let created = a
            .client
            .create_key(&rota_core::auth::NewKey {
                roles: vec!["reader".into()],
                ..Default::default()
            })
            .await
            .unwrap();
        // Used on B the moment A answered, before B's reload could bring it.
        let on_b = Client::with_token(&b.url, Some(&created.token)).unwrap();
        if let Err(e) = on_b.whoami().await {
            panic!("key {i}, created on A, was refused on B right after: {e}");
        }
    }
    // A made-up key id costs one read of the store while it is remembered as missing, however
    // often it is sent meanwhile. A reload (B still hears of A's twenty keys) forgets what is
    // missing, and so does the 2 s memory on a slow machine: a few reads, never one per request.
    let before = key_lookups(&b).await;
    let fake = format!("rota_0123456789abcdef_{}", "ab".repeat(32));
    let on_b = Client::with_token(&b.url, Some(&fake)).unwrap();
    for _ in 0..50 {
        assert!(on_b.whoami().await.is_err());
    }
    let reads = key_lookups(&b).await - before;
    assert!(
        (1..=3).contains(&reads),
        "{reads} store reads for 50 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_on_one_server_takes_its_new_secret_on_another_at_once() {
    let url = database().await;
    let (_da, a) = server(&url).await;
    let (_db, b) = server(&url).await;
    let created = a
        .client
        .create_key(&rota_core::auth::NewKey {
            roles: vec!["reader".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let old_on_b = Client::with_token(&b.url, Some(&created.token)).unwrap();
    old_on_b.whoami().await.unwrap();
    for i in 0..10 {
        // No grace: used on B the moment A answered, before B's reload could bring it.
        let rotated = a.client.rotate_key(&created.key.id, Some(0)).await.unwrap();
        let on_b = Client::with_token(&b.url, Some(&rotated.token)).unwrap();
        if let Err(e) = on_b.whoami().await {
            panic!("rotation {i} on A: the new secret was refused on B right after: {e}");
        }
    }
    // The first secret ended with the first rotation, on B too.
    let t = Instant::now();
    while old_on_b.whoami().await.is_ok() {
        assert!(t.elapsed() < PROPAGATION, "the old secret still works on B");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_on_one_server_ends_the_session_on_another() {
    let url = database().await;
    const SECRET: &str = "shared-session-secret-0123456789abcdef";
    let env = [
        ("ROTA_DATABASE_URL", url.as_str()),
        ("ROTA_ADMIN_TOKEN", ADMIN),
        ("ROTA_SESSION_SECRET", SECRET),
    ];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_with(da.path(), &env).await;
    let b = start_with(db.path(), &env).await;
    let key = a
        .client
        .create_key(&rota_core::auth::NewKey {
            roles: vec!["admin".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = http
        .post(format!("{}/login", a.url))
        .form(&[("token", key.token.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |url: &str| {
        http.get(format!("{url}/"))
            .header("cookie", cookie.clone())
            .send()
    };
    // One secret: the session works on both servers.
    assert_eq!(page(&b.url).await.unwrap().status(), 200);
    let out = http
        .post(format!("{}/logout", a.url))
        .header("cookie", cookie.clone())
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(page(&a.url).await.unwrap().status(), 303);
    let t = Instant::now();
    while page(&b.url).await.unwrap().status() != 303 {
        assert!(
            t.elapsed() < PROPAGATION,
            "the signed-out session still works on B after {PROPAGATION:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("sign-out reached the other server in {:?}", t.elapsed());
}

/// Two servers under mixed load; one is killed with SIGKILL. Everything acknowledged by
/// either is in the database, and the killed server's leases come back to the queue once
/// they expire, through the survivor (which takes over maintenance if it was not leading).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_one_of_two_servers_loses_nothing_acknowledged() {
    let url = database().await;
    let (_da, mut a) = server(&url).await;
    let (_db, b) = server(&url).await;
    let patch = QueueSettingsPatch {
        lease_ms: Some(2_000),
        ..Default::default()
    };
    a.client.update_queue("mixed", &patch).await.unwrap();
    let mut acked: Vec<tokio::task::JoinHandle<(Vec<String>, Vec<String>)>> = Vec::new();
    for (n, client) in [
        a.client.clone(),
        b.client.clone(),
        a.client.clone(),
        b.client.clone(),
    ]
    .into_iter()
    .enumerate()
    {
        acked.push(tokio::spawn(async move {
            let (mut enq, mut done) = (Vec::new(), Vec::new());
            let opts = ClaimOptions {
                worker: format!("w{n}"),
                max: 5,
                wait_ms: Some(100),
                ..Default::default()
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(4) {
                let tasks: Vec<NewTask> = (0..5)
                    .map(|i| NewTask::new("job", &serde_json::json!({ "n": n, "i": i })))
                    .collect();
                match client.enqueue_batch("mixed", &tasks).await {
                    Ok(out) => enq.extend(out.into_iter().map(|e| e.task.id.to_string())),
                    Err(_) => break,
                }
                let Ok(claimed) = client.claim("mixed", &opts).await else {
                    break;
                };
                for t in claimed.iter().take(3) {
                    let lease = &t.lease.as_ref().unwrap().token;
                    if client.complete(t.id, lease, None).await.is_ok() {
                        done.push(t.id.to_string());
                    } else {
                        break;
                    }
                }
            }
            (enq, done)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    a.child.kill().unwrap(); // SIGKILL, mid-traffic
    a.child.wait().unwrap();
    let (mut enqueued, mut completed) = (HashSet::new(), HashSet::new());
    for h in acked {
        let (e, d) = h.await.unwrap();
        enqueued.extend(e);
        completed.extend(d);
    }
    assert!(
        enqueued.len() > 100,
        "too little traffic: {}",
        enqueued.len()
    );
    for id in &enqueued {
        let t = b
            .client
            .get(id.parse().unwrap())
            .await
            .unwrap_or_else(|e| panic!("acknowledged task {id} is lost: {e}"));
        if completed.contains(id) {
            assert_eq!(
                t.state,
                rota_core::TaskState::Succeeded,
                "completion of {id} lost"
            );
        }
    }
    // Every lease the killed server handed out expires and its task returns; nothing stays
    // running once the survivor's maintenance has run.
    let t = Instant::now();
    loop {
        let info = b.client.queue("mixed").await.unwrap();
        if info.counts.running == 0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{} tasks still running long after their leases expired",
            info.counts.running
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{} acknowledged enqueues and {} completions survived SIGKILL of one of two servers",
        enqueued.len(),
        completed.len()
    );
}

/// Limits are shared among servers by demand, exchanged every second: a client whose requests
/// all reach one of two servers gets its whole in-flight limit there (not half of it), and
/// never more than the limit plus the idle server's tenth of its even split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_pinned_to_one_of_two_servers_gets_its_whole_limit() {
    let url = database().await;
    let (_da, a) = server(&url).await;
    let (_db, _b) = server(&url).await;
    let created = a
        .client
        .create_key(&rota_core::auth::NewKey {
            name: Some("pinned".into()),
            roles: vec!["worker".into()],
            limits: rota_core::auth::ClientLimits {
                max_in_flight: Some(10),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    let pinned = Client::with_token(&a.url, Some(&created.token)).unwrap();
    // Until A counts two servers it holds the whole limit anyway.
    let t = Instant::now();
    loop {
        let m = reqwest::get(format!("{}/metrics", a.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.lines().any(|l| l == "rota_servers 2") {
            break;
        }
        let servers: Vec<&str> = m.lines().filter(|l| l.contains("rota_servers")).collect();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "A never saw B: {servers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    let mut seen = Vec::new();
    loop {
        // Twenty long-polls at once on an empty queue: those admitted wait, the rest are
        // refused at once.
        let polls: Vec<_> = (0..20)
            .map(|i| {
                let c = pinned.clone();
                tokio::spawn(async move {
                    let opts = ClaimOptions {
                        worker: format!("w{i}"),
                        max: 1,
                        wait_ms: Some(600),
                        ..Default::default()
                    };
                    c.claim("pinned", &opts).await
                })
            })
            .collect();
        let mut admitted = 0;
        for p in polls {
            if p.await.unwrap().is_ok() {
                admitted += 1;
            }
        }
        seen.push(admitted);
        assert!(admitted <= 11, "over the limit: {seen:?}");
        if admitted >= 9 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "the pinned client never got its limit: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("in flight admitted per round: {seen:?}");
}
