//! The Faktory door's bounds, against the real `rota serve` binary: connections that never say
//! HELLO, or say it badly, are closed; at the connection caps silent connections make room for
//! real workers; idle connections close; FETCH names a bounded number of queues; MUTATE's
//! pattern is bounded and its scan stops at its time budget without holding up other requests;
//! only the worker that fetched a job acknowledges it.

mod common;

use faktory::{Client as Faktory, Job};
use rota_client::NewKey;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

struct Rota {
    server: common::Server,
    /// A worker key, the Faktory password.
    key: String,
    port: u16,
}

impl Rota {
    fn url(&self) -> String {
        format!("tcp://:{}@127.0.0.1:{}", self.key, self.port)
    }
}

async fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Rota) {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut env = env.to_vec();
    env.push(("ROTA_FAKTORY_LISTEN", &addr));
    let server = common::start_with(dir.path(), &env).await;
    let key = server
        .client
        .create_key(&NewKey {
            name: Some("faktory worker".into()),
            roles: vec!["producer".into(), "worker".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .token;
    (dir, Rota { server, key, port })
}

/// A raw connection: its lines, its writing half, and the salt of its `+HI`.
struct Raw {
    lines: Lines<BufReader<OwnedReadHalf>>,
    w: OwnedWriteHalf,
    salt: String,
}

const PATIENCE: Duration = Duration::from_secs(10);

impl Raw {
    async fn connect(port: u16) -> Raw {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (r, w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let hi = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the greeting comes at once")
            .unwrap()
            .expect("a greeting, not a closed connection");
        let hi: serde_json::Value = serde_json::from_str(hi.trim_start_matches("+HI ")).unwrap();
        let salt = hi["s"].as_str().unwrap().to_owned();
        Raw { lines, w, salt }
    }

    async fn send(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).await.unwrap();
        self.w.write_all(b"\r\n").await.unwrap();
    }

    /// The next line, `None` once the server closed the connection.
    async fn next(&mut self) -> Option<String> {
        tokio::time::timeout(PATIENCE, self.lines.next_line())
            .await
            .expect("the server answers or closes in time")
            .unwrap_or_default()
    }

    async fn hello(&mut self, password: &str) -> String {
        self.hello_as(password, "w1").await
    }

    async fn hello_as(&mut self, password: &str, wid: &str) -> String {
        use sha2::{Digest, Sha256};
        let hash: String = Sha256::digest(format!("{password}{}", self.salt))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.send(&format!(
            "HELLO {{\"v\":2,\"pwdhash\":\"{hash}\",\"wid\":\"{wid}\"}}"
        ))
        .await;
        self.next().await.unwrap()
    }

    /// Whether the server closed this connection, waiting up to [`PATIENCE`].
    async fn closed(&mut self) -> bool {
        matches!(
            tokio::time::timeout(PATIENCE, self.lines.next_line()).await,
            Ok(Ok(None) | Err(_))
        )
    }
}

/// A connection that never sends HELLO (or sends part of one) is closed at the HELLO deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_say_hello_are_closed_after_the_deadline() {
    let (_dir, rota) = start(&[("ROTA_LIMITS_HEADER_READ_TIMEOUT_MS", "300")]).await;
    let started = Instant::now();
    let mut silent = Raw::connect(rota.port).await;
    let mut partial = Raw::connect(rota.port).await;
    partial.w.write_all(b"HELLO {\"v\":").await.unwrap();
    for c in [&mut silent, &mut partial] {
        let m = c.next().await.unwrap();
        assert!(
            m.starts_with("-ERR no HELLO within 300 ms (limits.header_read_timeout_ms)"),
            "{m}"
        );
        assert!(c.closed().await);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // A client that says HELLO in time is served.
    let mut ok = Faktory::connect_to(&rota.url()).await.unwrap();
    ok.enqueue(Job::builder("fine").build()).await.unwrap();
}

/// Before HELLO a line may be a few KiB; a longer one closes the connection without the
/// server holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_before_hello_over_its_cap_closes_the_connection() {
    let (_dir, rota) = start(&[]).await;
    let mut c = Raw::connect(rota.port).await;
    // No newline: the server must not wait for the rest of it.
    c.w.write_all(&vec![b'x'; 16 * 1024]).await.unwrap();
    let m = c.next().await.unwrap();
    assert!(
        m.contains("over 8192 bytes (faktory.max_hello_bytes)"),
        "{m}"
    );
    assert!(c.closed().await);
}

/// Three failed HELLOs (or commands before HELLO) close the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_hellos_close_the_connection_after_the_third() {
    let (_dir, rota) = start(&[]).await;
    let mut c = Raw::connect(rota.port).await;
    let first = c.hello("rota_0000000000000000_wrong").await;
    assert!(
        first.starts_with("-ERR unauthorized: Invalid password"),
        "{first}"
    );
    c.send("FETCH default").await;
    let second = c.next().await.unwrap();
    assert!(second.starts_with("-ERR send HELLO first"), "{second}");
    let third = c.hello("rota_0000000000000000_wrong").await;
    assert!(third.contains("faktory.max_failed_hellos"), "{third}");
    assert!(c.closed().await);
    // Another connection still signs in.
    let mut again = Raw::connect(rota.port).await;
    assert_eq!(again.hello(&rota.key).await, "+OK");
}

/// A connection with no command in progress closes after faktory.idle_timeout_ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_closes_after_the_idle_timeout() {
    let (_dir, rota) = start(&[("ROTA_FAKTORY_IDLE_TIMEOUT_MS", "300")]).await;
    let mut c = Raw::connect(rota.port).await;
    assert_eq!(c.hello(&rota.key).await, "+OK");
    c.send("FETCH nothing-here").await;
    // FETCH waits 2 s for a job: a command in progress, not idleness.
    assert_eq!(c.next().await.unwrap(), "$-1");
    let idle_from = Instant::now();
    assert!(c.closed().await);
    assert!(idle_from.elapsed() < Duration::from_secs(5));
}

/// With the server's cap at N, N silent connections do not lock a worker out: the newcomer
/// closes the oldest silent one, and an idle signed-in worker is kept over silent ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_silent_connections_make_room_for_a_worker() {
    let (_dir, rota) = start(&[("ROTA_LIMITS_MAX_CONNECTIONS", "4")]).await;
    let mut worker = Raw::connect(rota.port).await;
    assert_eq!(worker.hello(&rota.key).await, "+OK");
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(Raw::connect(rota.port).await);
    }
    // At the cap: a real client gets in.
    let mut ok = Faktory::connect_to(&rota.url()).await.unwrap();
    ok.enqueue(Job::builder("fine").queue("cap").build())
        .await
        .unwrap();
    assert!(
        silent[0].closed().await,
        "the oldest silent connection made room"
    );
    // The idle worker that signed in first is still served.
    worker.send("FETCH cap").await;
    let reply = worker.next().await.unwrap();
    assert!(reply.starts_with('$') && reply != "$-1", "{reply}");
}

/// Past limits.max_connections_per_address, a new connection closes that address's oldest
/// connection that is not running a command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_cap() {
    let (_dir, rota) = start(&[("ROTA_LIMITS_MAX_CONNECTIONS_PER_ADDRESS", "2")]).await;
    let mut first = Raw::connect(rota.port).await;
    let _second = Raw::connect(rota.port).await;
    let mut third = Raw::connect(rota.port).await;
    assert!(first.closed().await, "the address's oldest made room");
    assert_eq!(third.hello(&rota.key).await, "+OK");
}

/// FETCH names at most faktory.max_fetch_queues queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_names_a_bounded_number_of_queues() {
    let (_dir, rota) = start(&[]).await;
    let mut c = Raw::connect(rota.port).await;
    assert_eq!(c.hello(&rota.key).await, "+OK");
    let names = |n: usize| {
        (0..n)
            .map(|i| format!("q{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let started = Instant::now();
    c.send(&format!("FETCH {}", names(65))).await;
    let m = c.next().await.unwrap();
    assert!(
        m.contains("FETCH names 65 queues; the limit is 64 (faktory.max_fetch_queues)"),
        "{m}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused, not waited on"
    );
    c.send(&format!("FETCH {}", names(64))).await;
    assert_eq!(c.next().await.unwrap(), "$-1", "64 are fetched from");
}

/// A MUTATE pattern is at most faktory.max_mutate_pattern_bytes long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_mutate_pattern_is_refused() {
    let (_dir, rota) = start(&[]).await;
    let mut c = Raw::connect(rota.port).await;
    assert_eq!(c.hello(&rota.server.admin_token).await, "+OK");
    let pattern = format!("{}b", "*a".repeat(5_000));
    let op =
        serde_json::json!({"cmd": "kill", "target": "scheduled", "filter": {"regexp": pattern}});
    c.send(&format!("MUTATE {op}")).await;
    let m = c.next().await.unwrap();
    assert!(
        m.contains("the limit is 256 (faktory.max_mutate_pattern_bytes)"),
        "{m}"
    );
}

/// A MUTATE whose matching is slow stops at its time budget with an error naming it, and
/// while two run the server's other requests are answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_mutate_stops_at_its_budget_without_holding_up_the_server() {
    let (_dir, rota) = start(&[("ROTA_FAKTORY_MUTATE_BUDGET_MS", "1500")]).await;
    let mut producer = Faktory::connect_to(&rota.url()).await.unwrap();
    let long = "a".repeat(200_000);
    for _ in 0..40 {
        let mut j = Job::builder("slow")
            .args(vec![serde_json::json!(long)])
            .queue("m")
            .build();
        j.at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
        producer.enqueue(j).await.unwrap();
    }
    // Nearly matches at every place of every job: each costs the text's length times the
    // segment's.
    let pattern = format!("*{}b*", "a?".repeat(120));
    let op =
        serde_json::json!({"cmd": "kill", "target": "scheduled", "filter": {"regexp": pattern}});
    let mutate = |op: String| {
        let (port, admin) = (rota.port, rota.server.admin_token.clone());
        tokio::spawn(async move {
            let mut c = Raw::connect(port).await;
            assert_eq!(c.hello(&admin).await, "+OK");
            let started = Instant::now();
            c.send(&format!("MUTATE {op}")).await;
            let reply = tokio::time::timeout(Duration::from_secs(60), c.lines.next_line())
                .await
                .expect("MUTATE answers")
                .unwrap()
                .unwrap();
            (reply, started.elapsed())
        })
    };
    let runs = [mutate(op.to_string()), mutate(op.to_string())];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    assert!(rota.server.client.healthy().await);
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "/healthz took {waited:?} while MUTATE ran"
    );
    for run in runs {
        let (reply, took) = run.await.unwrap();
        assert!(
            reply.contains("time budget of 1500 ms (faktory.mutate_budget_ms)"),
            "{reply}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    // Nothing matched, so nothing changed.
    assert_eq!(
        rota.server
            .client
            .queue("m")
            .await
            .unwrap()
            .counts
            .scheduled,
        40
    );
}

/// A command line's bytes count against the body budgets while it is read: two unfinished
/// 900 KB PUSHes of one key pass its per-client budget of 1.5 MiB, so one is refused (and its
/// connection closed) while the other goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_count_against_the_body_budgets() {
    let (_dir, rota) = start(&[
        ("ROTA_LIMITS_MAX_BODY_BYTES", "1048576"),
        ("ROTA_LIMITS_MAX_BODY_BYTES_IN_FLIGHT_PER_CLIENT", "1572864"),
    ])
    .await;
    let mut conns = [Raw::connect(rota.port).await, Raw::connect(rota.port).await];
    let body = "x".repeat(900_000);
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(c.hello(&rota.key).await, "+OK");
        let start = format!("PUSH {{\"jid\":\"j{i}\",\"jobtype\":\"big\",\"args\":[\"{body}");
        c.w.write_all(start.as_bytes()).await.unwrap();
    }
    let (refused, answered) = {
        let [a, b] = &mut conns;
        tokio::select! {
            m = a.next() => (m.unwrap(), 0),
            m = b.next() => (m.unwrap(), 1),
        }
    };
    assert!(
        refused.contains("too_many_in_flight")
            && refused.contains("limits.max_body_bytes_in_flight_per_client"),
        "{refused}"
    );
    let other = &mut conns[1 - answered];
    other.send("\"]}").await;
    assert_eq!(other.next().await.unwrap(), "+OK");
    assert!(conns[answered].closed().await);
}

/// A job fetched by one worker process is not acknowledged by another's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_worker_that_fetched_a_job_acknowledges_it() {
    let (_dir, rota) = start(&[]).await;
    let mut producer = Faktory::connect_to(&rota.url()).await.unwrap();
    let job = Job::builder("mine").queue("acks").build();
    let jid = job.id().to_string();
    producer.enqueue(job).await.unwrap();
    let mut w1 = Raw::connect(rota.port).await;
    assert_eq!(w1.hello_as(&rota.key, "w1").await, "+OK");
    w1.send("FETCH acks").await;
    assert!(w1.next().await.unwrap().starts_with('$'));
    assert!(w1.next().await.unwrap().contains(&jid));
    let mut w2 = Raw::connect(rota.port).await;
    assert_eq!(w2.hello_as(&rota.key, "w2").await, "+OK");
    let ack = format!("ACK {{\"jid\":\"{jid}\"}}");
    w2.send(&ack).await;
    let m = w2.next().await.unwrap();
    assert!(m.starts_with("-ERR unknown_jid"), "{m}");
    w1.send(&ack).await;
    assert_eq!(
        w1.next().await.unwrap(),
        "+OK",
        "the fetching worker still may"
    );
}
