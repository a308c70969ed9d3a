//! The Faktory door driven by an unmodified Faktory client library (the `faktory` crate),
//! against the real `rota serve` binary (the main scenario on both engines): pushes, bulk
//! pushes, fetch and ack, failures into retries and dead letters, scheduled jobs, and jobs
//! crossing between the two doors.

mod common;

use faktory::{Client as Faktory, Job, Worker};
use rota_client::{ListOptions, NewKey, NewTask};
use rota_core::TaskState;
use std::time::Duration;

struct Rota {
    server: common::Server,
    /// `tcp://:<key>@127.0.0.1:<port>`: a worker key as the Faktory password.
    url: String,
    /// The same with the server's admin token.
    admin_url: String,
    /// The worker key in `url`, for raw protocol lines.
    key: String,
    port: u16,
}

async fn start(dir: &std::path::Path) -> Rota {
    start_with(dir, &[]).await
}

/// On PostgreSQL: a database of the shared throwaway cluster.
async fn start_on_postgres(dir: &std::path::Path) -> Rota {
    let url = tokio::task::spawn_blocking(|| {
        rota_postgres::testing::TestCluster::shared().create_database()
    })
    .await
    .unwrap();
    let admin = "faktory-pg-admin-token-0123456789abcdef0123";
    start_with(
        dir,
        &[("ROTA_DATABASE_URL", &url), ("ROTA_ADMIN_TOKEN", admin)],
    )
    .await
}

async fn start_with(dir: &std::path::Path, env: &[(&str, &str)]) -> Rota {
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut env = env.to_vec();
    env.push(("ROTA_FAKTORY_LISTEN", &addr));
    let server = common::start_with(dir, &env).await;
    let key = server
        .client
        .create_key(&NewKey {
            name: Some("faktory worker".into()),
            roles: vec!["producer".into(), "worker".into(), "reader".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    Rota {
        url: format!("tcp://:{}@{addr}", key.token),
        key: key.token.clone(),
        admin_url: format!("tcp://:{}@{addr}", server.admin_token),
        server,
        port,
    }
}

/// Sends one command after a HELLO with `password`, as a Faktory client would, and answers
/// the reply line (a bulk reply's content).
async fn raw(port: u16, password: &str, command: &str) -> String {
    use sha2::{Digest, Sha256};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let hi = lines.next_line().await.unwrap().unwrap();
    let hi: serde_json::Value = serde_json::from_str(hi.trim_start_matches("+HI ")).unwrap();
    let salt = hi["s"].as_str().unwrap();
    let hash: String = Sha256::digest(format!("{password}{salt}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hello = format!("HELLO {{\"v\":2,\"pwdhash\":\"{hash}\"}}\r\n{command}\r\n");
    w.write_all(hello.as_bytes()).await.unwrap();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "+OK");
    let reply = lines.next_line().await.unwrap().unwrap();
    if reply.starts_with('$') && reply != "$-1" {
        return lines.next_line().await.unwrap().unwrap();
    }
    reply
}

/// Pushes one job of `kind` to `queue` and fetches it over a connection of its own, as a worker
/// would; answers its jid.
async fn push_and_fetch(rota: &Rota, queue: &str) -> String {
    let key = &rota.key;
    let mut producer = Faktory::connect_to(&rota.url).await.unwrap();
    let job = Job::builder("sync")
        .args(vec![serde_json::json!(1)])
        .queue(queue)
        .build();
    let jid = job.id().to_string();
    producer.enqueue(job).await.unwrap();
    let fetched = raw(rota.port, key, &format!("FETCH {queue}")).await;
    let fetched: serde_json::Value = serde_json::from_str(&fetched).unwrap();
    assert_eq!(fetched["jid"], jid.as_str());
    jid
}

/// The task a job became, found through the HTTP API by its id.
async fn task_of(rota: &Rota, task: rota_core::TaskId) -> rota_core::Task {
    rota.server.client.get(task).await.unwrap()
}

/// The running task that holds a jid, found through the HTTP API by its unique key.
async fn running(rota: &Rota, queue: &str, jid: &str) -> rota_core::Task {
    let opts = ListOptions {
        unique_key: Some(format!("faktory-jid:{jid}")),
        ..Default::default()
    };
    let mut tasks = rota.server.client.list(queue, &opts).await.unwrap().tasks;
    assert_eq!(tasks.len(), 1, "one live holder of {jid}");
    let t = tasks.remove(0);
    assert_eq!(t.state, TaskState::Running);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_fetched_through_one_server_is_acknowledged_through_another() {
    // Two servers on one PostgreSQL database, as behind a load balancer that is not sticky.
    let url = tokio::task::spawn_blocking(|| {
        rota_postgres::testing::TestCluster::shared().create_database()
    })
    .await
    .unwrap();
    let env = [
        ("ROTA_DATABASE_URL", url.as_str()),
        (
            "ROTA_ADMIN_TOKEN",
            "faktory-pg-admin-token-0123456789abcdef0123",
        ),
    ];
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_with(a_dir.path(), &env).await;
    let b = start_with(b_dir.path(), &env).await;
    let key = b.key.clone();

    let jid = push_and_fetch(&a, "ha").await;
    let task = running(&b, "ha", &jid).await.id;
    assert_eq!(
        raw(b.port, &key, &format!(r#"ACK {{"jid":"{jid}"}}"#)).await,
        "+OK"
    );
    assert_eq!(task_of(&a, task).await.state, TaskState::Succeeded);
    // Once acknowledged, the lease the fetching server remembers is refused by the store, and
    // no server knows another.
    for port in [a.port, b.port] {
        let again = raw(port, &key, &format!(r#"ACK {{"jid":"{jid}"}}"#)).await;
        assert!(
            again.starts_with("-ERR lease_lost") || again.starts_with("-ERR unknown_jid"),
            "{again}"
        );
    }
    assert_eq!(task_of(&b, task).await.state, TaskState::Succeeded);

    let jid = push_and_fetch(&a, "ha").await;
    let task = running(&a, "ha", &jid).await.id;
    let fail = format!(r#"FAIL {{"jid":"{jid}","errtype":"Boom","message":"no"}}"#);
    assert_eq!(raw(b.port, &key, &fail).await, "+OK");
    let task = task_of(&b, task).await;
    assert_eq!(task.state, TaskState::Scheduled, "retried later");
    assert_eq!(task.errors.last().unwrap().message, "Boom: no");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_fetched_before_a_restart_is_acknowledged_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let rota = start(dir.path()).await;
    let key = rota.key.clone();
    let jid = push_and_fetch(&rota, "restarted").await;
    let task = running(&rota, "restarted", &jid).await.id;
    let Rota { server, port, .. } = rota;
    let admin = server.admin_token.clone();
    drop(server);
    let addr = format!("127.0.0.1:{port}");
    let server = common::start_with(
        dir.path(),
        &[("ROTA_FAKTORY_LISTEN", &addr), ("ROTA_ADMIN_TOKEN", &admin)],
    )
    .await;
    assert_eq!(
        raw(port, &key, &format!(r#"ACK {{"jid":"{jid}"}}"#)).await,
        "+OK"
    );
    assert_eq!(
        server.client.get(task).await.unwrap().state,
        TaskState::Succeeded
    );
}

async fn worker_ok(url: &str, kind: &'static str) -> faktory::Worker<std::io::Error> {
    Worker::builder()
        .hostname("test-host".into())
        .register_fn(kind, |_job| async { Ok::<(), std::io::Error>(()) })
        .connect_to(url)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faktory_client_pushes_fetches_acks_and_fails_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let rota = start(dir.path()).await;
    pushes_fetches_acks_and_fails(&rota).await;
    mutates_the_retry_scheduled_and_dead_sets(&rota).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faktory_client_pushes_fetches_acks_and_fails_jobs_on_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let rota = start_on_postgres(dir.path()).await;
    pushes_fetches_acks_and_fails(&rota).await;
    mutates_the_retry_scheduled_and_dead_sets(&rota).await;
}

async fn pushes_fetches_acks_and_fails(rota: &Rota) {
    let http = &rota.server.client;
    let mut producer = Faktory::connect_to(&rota.url).await.unwrap();

    // PUSH, then a worker FETCHes and ACKs it: the task succeeded, visible over HTTP.
    let job = Job::builder("add")
        .args(vec![serde_json::json!(1), serde_json::json!(2)])
        .queue("math")
        .build();
    producer.enqueue(job).await.unwrap();
    let q = http.queue("math").await.unwrap();
    assert_eq!(q.counts.ready, 1);
    let mut w = worker_ok(&rota.url, "add").await;
    assert!(w.run_one(0, &["math"]).await.unwrap(), "a job was run");
    let q = http.queue("math").await.unwrap();
    assert_eq!((q.counts.ready, q.counts.succeeded), (0, 1));

    // PUSHB: every job in; a second live job with a used jid is refused by jid.
    let jobs: Vec<Job> = (0..3)
        .map(|i| {
            Job::builder("add")
                .args(vec![serde_json::json!(i)])
                .queue("bulk")
                .build()
        })
        .collect();
    let again = jobs[0].clone();
    let again_jid = again.id().to_string();
    let (n, errors) = producer.enqueue_many(jobs).await.unwrap();
    assert_eq!((n, errors), (3, None));
    let (n, errors) = producer.enqueue_many([again.clone()]).await.unwrap();
    assert_eq!(n, 0);
    let errors = errors.expect("the duplicate is reported");
    assert!(errors[&again_jid].contains("already"), "{errors:?}");
    assert!(producer.enqueue(again).await.is_err());
    assert_eq!(http.queue("bulk").await.unwrap().counts.ready, 3);

    // A failing job with retry 0 goes to the dead letters on its first failure, with the
    // worker's error; with retry 2 it is scheduled again, by Faktory's backoff (15 s or more).
    let mut failing = Worker::builder()
        .register_fn("boom", |_job| async {
            Err::<(), _>(std::io::Error::other("kaboom"))
        })
        .connect_to(&rota.url)
        .await
        .unwrap();
    let mut once = Job::builder("boom").queue("fails").build();
    once.retry = Some(0);
    producer.enqueue(once).await.unwrap();
    failing.run_one(0, &["fails"]).await.unwrap();
    let dead = http
        .list(
            "fails",
            &rota_client::ListOptions {
                state: Some(TaskState::Dead),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(dead.tasks.len(), 1);
    assert!(
        dead.tasks[0].errors[0].message.contains("kaboom"),
        "{:?}",
        dead.tasks[0].errors
    );
    let mut twice = Job::builder("boom").queue("fails").build();
    twice.retry = Some(2);
    producer.enqueue(twice).await.unwrap();
    failing.run_one(0, &["fails"]).await.unwrap();
    let q = http.queue("fails").await.unwrap();
    assert_eq!((q.counts.scheduled, q.counts.dead), (1, 1));
    let retrying = http
        .list(
            "fails",
            &rota_client::ListOptions {
                state: Some(TaskState::Scheduled),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let t = &retrying.tasks[0];
    assert_eq!((t.attempt, t.max_attempts), (1, 3));
    let wait = t.run_at.0 - t.updated_at.0;
    assert!((15_000..=45_000).contains(&wait), "retry in {wait} ms");

    // A job scheduled with `at` waits; INFO counts the ready ones by queue.
    let mut later = Job::builder("add").queue("later").build();
    later.at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    producer.enqueue(later).await.unwrap();
    assert_eq!(http.queue("later").await.unwrap().counts.scheduled, 1);
    let info = producer.current_info().await.unwrap();
    assert_eq!(info.data.queues.get("bulk"), Some(&3));
    assert_eq!(info.data.total_processed, 1);

    // QUEUE PAUSE and RESUME, by name and for every queue, with `queues:update` (the worker
    // key lacks it).
    let err = producer.queue_pause(&["bulk"]).await.unwrap_err();
    assert!(format!("{err:?}").contains("queues:update"), "{err:?}");
    let mut producer = Faktory::connect_to(&rota.admin_url).await.unwrap();
    producer.queue_pause(&["bulk"]).await.unwrap();
    assert!(http.queue("bulk").await.unwrap().settings.paused);
    assert!(!http.queue("math").await.unwrap().settings.paused);
    producer.queue_pause_all().await.unwrap();
    assert!(http.queue("math").await.unwrap().settings.paused);
    producer.queue_resume_all().await.unwrap();
    assert!(!http.queue("bulk").await.unwrap().settings.paused);

    // QUEUE REMOVE deletes every task of a queue, live ones too; FLUSH every queue's.
    producer.queue_remove(&["bulk"]).await.unwrap();
    let q = http.queue("bulk").await.unwrap();
    assert_eq!((q.counts.ready, q.counts.succeeded), (0, 0));
    assert_eq!(http.queue("later").await.unwrap().counts.scheduled, 1);
    let mut worker_conn = Faktory::connect_to(&rota.url).await.unwrap();
    let refused = worker_conn.queue_remove(&["later"]).await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("queues:purge"),
        "{refused:?}"
    );
    // FLUSH (not in this crate's API): the admin role only.
    let key = rota
        .url
        .trim_start_matches("tcp://:")
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    let refused = raw(rota.port, &key, "FLUSH").await;
    assert!(refused.starts_with("-ERR forbidden"), "{refused}");
    assert_eq!(
        raw(rota.port, &rota.server.admin_token, "FLUSH").await,
        "+OK"
    );
    for name in ["math", "fails", "later"] {
        let c = http.queue(name).await.unwrap().counts;
        assert_eq!(
            c.scheduled + c.ready + c.succeeded + c.dead,
            0,
            "{name}: {c:?}"
        );
    }
}

/// MUTATE over Faktory's sets (retries, scheduled, dead), as the `faktory` crate sends it.
async fn mutates_the_retry_scheduled_and_dead_sets(rota: &Rota) {
    use faktory::mutate::{Filter, JobSet};
    let http = &rota.server.client;
    let counts = || async { http.queue("m").await.unwrap().counts };
    let mut producer = Faktory::connect_to(&rota.url).await.unwrap();
    let mut admin = Faktory::connect_to(&rota.admin_url).await.unwrap();
    for arg in ["keep", "drop"] {
        let mut j = Job::builder("sync")
            .args(vec![serde_json::json!(arg)])
            .queue("m")
            .build();
        j.at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        producer.enqueue(j).await.unwrap();
    }
    let mut failing = Worker::builder()
        .register_fn("flaky", |_job| async {
            Err::<(), _>(std::io::Error::other("flaked"))
        })
        .connect_to(&rota.url)
        .await
        .unwrap();
    let mut retried = Job::builder("flaky").queue("m").build();
    retried.retry = Some(3);
    let retried_jid = retried.id().clone();
    let mut dead = Job::builder("flaky").queue("m").build();
    dead.retry = Some(0);
    producer.enqueue_many([retried, dead]).await.unwrap();
    failing.run_one(0, &["m"]).await.unwrap();
    failing.run_one(0, &["m"]).await.unwrap();
    let c = counts().await;
    assert_eq!((c.scheduled, c.dead), (3, 1));
    // INFO's `tasks` (which the `faktory` crate marks deprecated; the Node library reads it).
    let info = raw(rota.port, &rota.server.admin_token, "INFO").await;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let tasks = &info["faktory"]["tasks"];
    let size = |set: &str| tasks[set]["size"].as_u64();
    assert_eq!(
        (size("Retries"), size("Scheduled"), size("Dead")),
        (Some(1), Some(2), Some(1)),
        "{tasks}"
    );

    // A worker key may not change the sets; the refusal names the permission.
    let refused = producer
        .requeue(JobSet::Retries, Filter::empty())
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("tasks:retry"),
        "{refused:?}"
    );
    assert_eq!(counts().await.scheduled, 3);

    // discard by pattern: only the matching scheduled job goes.
    let pattern = r#"*\"args\":\[\"drop\"\]*"#;
    admin
        .discard(JobSet::Scheduled, Filter::from_pattern(pattern))
        .await
        .unwrap();
    assert_eq!((counts().await.scheduled, counts().await.dead), (2, 1));
    // kill by job type moves the retry (not the scheduled job) to the dead letters.
    admin
        .kill(JobSet::Retries, Filter::from_kind("flaky"))
        .await
        .unwrap();
    let c = counts().await;
    assert_eq!((c.scheduled, c.dead), (1, 2));
    // requeue by jid brings that dead job back, ready now.
    admin
        .requeue_by_ids(JobSet::Dead, &[&retried_jid])
        .await
        .unwrap();
    let c = counts().await;
    assert_eq!((c.ready, c.dead), (1, 1));
    // requeue of the scheduled set runs it now; clear empties the dead letters.
    admin
        .requeue(JobSet::Scheduled, Filter::empty())
        .await
        .unwrap();
    admin.clear(JobSet::Dead).await.unwrap();
    let c = counts().await;
    assert_eq!((c.scheduled, c.ready, c.dead), (0, 2, 0));

    // What Rota cannot read the way Redis would is refused, naming it.
    let bad = r#"MUTATE {"cmd":"kill","target":"scheduled","filter":{"regexp":"*[ab]*"}}"#;
    let refused = raw(rota.port, &rota.server.admin_token, bad).await;
    assert!(refused.contains("character classes"), "{refused}");
    let bad = r#"MUTATE {"cmd":"kill","target":"busy"}"#;
    let refused = raw(rota.port, &rota.server.admin_token, bad).await;
    assert!(refused.contains("retries, scheduled or dead"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_cross_between_the_http_and_faktory_doors() {
    let dir = tempfile::tempdir().unwrap();
    let rota = start(dir.path()).await;
    let http = &rota.server.client;

    // Enqueued over HTTP, fetched and acknowledged by a Faktory worker: the task id is the jid
    // and the payload the one argument.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let task = http
        .enqueue(
            "mixed",
            &NewTask::new("email", &serde_json::json!({"to": "a@b"})),
        )
        .await
        .unwrap();
    let mut w = Worker::builder()
        .register_fn("email", move |job| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push((job.id().to_string(), job.args().to_vec()));
                Ok::<(), std::io::Error>(())
            }
        })
        .connect_to(&rota.url)
        .await
        .unwrap();
    assert!(w.run_one(0, &["mixed"]).await.unwrap());
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![(
            task.task.id.to_string(),
            vec![serde_json::json!({"to": "a@b"})]
        )]
    );
    assert_eq!(
        http.get(task.task.id).await.unwrap().state,
        TaskState::Succeeded
    );

    // Pushed over Faktory, claimed and completed by an HTTP worker: the payload is the job.
    let mut producer = Faktory::connect_to(&rota.url).await.unwrap();
    let job = Job::builder("report")
        .args(vec![serde_json::json!("q3")])
        .queue("mixed")
        .build();
    let jid = job.id().to_string();
    producer.enqueue(job).await.unwrap();
    let claimed = http
        .claim(
            "mixed",
            &rota_client::ClaimOptions {
                worker: "http-worker".into(),
                max: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let payload: serde_json::Value = serde_json::from_str(claimed[0].payload.get()).unwrap();
    assert_eq!(payload["jid"], jid.as_str());
    assert_eq!(payload["args"], serde_json::json!(["q3"]));
    assert_eq!(claimed[0].kind, "report");
    let lease = claimed[0].lease.as_ref().unwrap().token.clone();
    http.complete(claimed[0].id, &lease, None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_bad_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let rota = start(dir.path()).await;
    let wrong = format!("tcp://:rota_0000000000000000_nope@127.0.0.1:{}", rota.port);
    let err = Faktory::connect_to(&wrong).await.err().expect("refused");
    assert!(format!("{err:?}").contains("Invalid password"), "{err:?}");

    // A line that is not a command closes that connection; the server goes on serving.
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", rota.port))
        .await
        .unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let hi = lines.next_line().await.unwrap().unwrap();
    assert!(hi.starts_with("+HI {\"v\":2,\"i\":1,\"s\":"), "{hi}");
    w.write_all(b"PUSH {}\r\n").await.unwrap();
    let answer = lines.next_line().await.unwrap().unwrap();
    assert!(answer.starts_with("-ERR send HELLO first"), "{answer}");
    // After HELLO, a command may be as long as limits.max_body_bytes.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", rota.port))
        .await
        .unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let hi = lines.next_line().await.unwrap().unwrap();
    let salt = hi.split('"').nth(7).unwrap().to_owned();
    let hash: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(format!("{}{salt}", rota.key))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    w.write_all(format!("HELLO {{\"v\":2,\"pwdhash\":\"{hash}\"}}\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(lines.next_line().await.unwrap().unwrap(), "+OK");
    let big = vec![b'x'; 9 << 20]; // over the default limits.max_body_bytes, 8 MiB
    let _ = w.write_all(&big).await;
    let _ = w.write_all(b"\r\n").await;
    let answer = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap_or_default();
    assert!(answer.contains("limits.max_body_bytes"), "{answer}");
    let mut ok = Faktory::connect_to(&rota.url).await.unwrap();
    ok.enqueue(Job::builder("still").build()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_stops_when_an_operator_asks_it_to() {
    let dir = tempfile::tempdir().unwrap();
    let rota = start(dir.path()).await;
    let http = &rota.server.client;
    let wid = faktory::WorkerId::random();
    let mut w = Worker::builder()
        .wid(wid.clone())
        .hostname("box-7".into())
        .labels(["rust".to_owned()])
        .register_fn("noop", |_job| async { Ok::<(), std::io::Error>(()) })
        .connect_to(&rota.url)
        .await
        .unwrap();
    let running = tokio::spawn(async move { w.run(&["idle"]).await });

    // It is listed while connected, with what its HELLO said.
    let t = std::time::Instant::now();
    let me = loop {
        let all = http.workers().await.unwrap();
        if let Some(me) = all.into_iter().find(|p| p.wid == wid.to_string()) {
            break me;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the worker never showed up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (me.hostname.as_str(), me.labels.clone()),
        ("box-7", vec!["rust".to_owned()])
    );
    assert!(http.quiet_worker("nobody").await.is_err());

    // Asked to terminate, it stops at its next BEAT (the crate beats every 5 s).
    let asked = http.terminate_worker(wid.as_ref()).await.unwrap();
    assert_eq!(asked.signal.as_deref(), Some("terminate"));
    let stopped = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the worker stopped")
        .unwrap()
        .unwrap();
    assert_eq!(stopped.reason, faktory::StopReason::ServerInstruction);
}
