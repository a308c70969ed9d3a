//! The Faktory commands, each a call into the service as the connection's caller.

use super::job::{self, Pushed};
use super::workers::{Leased, Signal, Worker};
use super::{invalid, parse_json, Reply, Session};
use crate::auth::{Caller, Credential};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::service::Claim;
use crate::AppState;
use rota_core::TaskId;
use rota_store::{Completion, FailureReport, Heartbeat};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// How long FETCH waits for a job, as Faktory's server does.
const FETCH_WAIT_MS: u64 = 2_000;
use job::DEFAULT_RESERVE_S;

#[derive(Deserialize)]
struct Hello {
    v: Option<i64>,
    pwdhash: Option<String>,
    wid: Option<String>,
    hostname: Option<String>,
    pid: Option<i64>,
    #[serde(default)]
    labels: Vec<String>,
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Unauthenticated, "unauthorized", message)
}

/// `HELLO {...}`: checks the password proof (an API key's, or the admin token's) and records a
/// worker process.
pub(super) async fn hello(st: &AppState, arg: &str) -> ApiResult<Session> {
    let h: Hello = parse_json("HELLO", arg)?;
    if h.v.is_some_and(|v| v < 2) {
        return Err(invalid("this server speaks protocol version 2"));
    }
    let proof = match (&h.pwdhash, st.auth.enabled()) {
        (_, false) => None,
        (None, true) => {
            return Err(unauthorized(
                "Invalid password: this server requires one; use a Rota API key as the password",
            ))
        }
        (Some(hex), true) => Some(
            crate::auth::token::parse_hex32(hex)
                .ok_or_else(|| unauthorized("Invalid password: pwdhash is not 64 hex digits"))?,
        ),
    };
    let cred = proof.map(|proof| Credential::FaktoryProof { proof, key: None });
    let (caller, _permit) = st.auth.admit(cred, None).await.map_err(|e| match e.kind {
        ErrorKind::Unauthenticated => unauthorized(format!("Invalid password: {}", e.message)),
        _ => e,
    })?;
    if let Some(wid) = &h.wid {
        crate::service::check_name("wid", wid, &st.config.limits)?;
        st.faktory.connected(
            &caller.tenant,
            Worker {
                wid: wid.clone(),
                hostname: h.hostname.unwrap_or_default(),
                pid: h.pid.unwrap_or(0),
                labels: h.labels,
                connections: 0,
                connected_at: st.clock.now(),
                last_beat: None,
                signal: None,
            },
        );
    }
    Ok(Session {
        proof,
        key: caller.principal.key_id.clone(),
        tenant: caller.tenant.clone(),
        wid: h.wid,
        charge_to: caller,
    })
}

/// Any command after HELLO.
pub(super) async fn run(
    st: &AppState,
    s: &Session,
    verb: &str,
    arg: &str,
    peer: std::net::IpAddr,
) -> Reply {
    // Checked again for every command, so a revoked key stops at its next command.
    let (caller, _permit) = match st.auth.admit(s.credential(), None).await {
        Ok(admitted) => admitted,
        Err(e) => return e.into(),
    };
    // For the audit log of the administrative commands (QUEUE PAUSE, FLUSH, MUTATE, …).
    let headers = axum::http::HeaderMap::new();
    let caller = caller.from_peer(&headers, Some(std::net::SocketAddr::new(peer, 0)));
    st.faktory.command();
    // Maintenance refuses what it refuses at the HTTP door; work handed out may finish.
    let now = st.clock.now();
    if let Some(m) = st.auth.maintenance(now).filter(|m| m.refuses(now)) {
        if matches!(
            verb,
            "PUSH" | "PUSHB" | "FETCH" | "QUEUE" | "FLUSH" | "MUTATE"
        ) {
            return crate::maintenance::refusal(&m, now).into();
        }
    }
    // Each command in its span while tracing is on (the protocol carries no trace context;
    // a job's own rides in `custom`).
    let telemetry = st.service.telemetry();
    if telemetry.is_on() {
        let attributes = vec![
            opentelemetry::KeyValue::new("rpc.system", "faktory"),
            opentelemetry::KeyValue::new("rpc.method", verb.to_owned()),
            opentelemetry::KeyValue::new("rota.tenant", caller.tenant.clone()),
        ];
        let outcome = |r: &Reply| match r {
            Reply::Error(e) => (Vec::new(), Some(e.clone())),
            _ => (Vec::new(), None),
        };
        let name = format!("faktory {verb}");
        let handled = command(st, s, &caller, verb, arg);
        return telemetry
            .request(name, None, attributes, handled, outcome)
            .await;
    }
    command(st, s, &caller, verb, arg).await
}

/// One command, answered.
async fn command(st: &AppState, s: &Session, caller: &Caller, verb: &str, arg: &str) -> Reply {
    let done = match verb {
        "PUSH" => push(st, caller, arg).await,
        "PUSHB" => push_batch(st, caller, arg).await,
        "FETCH" => fetch(st, caller, s, arg).await,
        "ACK" => ack(st, caller, s, arg).await,
        "FAIL" => fail(st, caller, s, arg).await,
        "BEAT" => beat(st, caller, s, arg),
        "INFO" => info(st, caller).await,
        "QUEUE" => queue_control(st, caller, arg).await,
        "FLUSH" => flush(st, caller).await,
        "MUTATE" => super::mutate::mutate(st, caller, arg).await,
        _ => Err(ApiError::new(
            ErrorKind::BadRequest,
            "unknown_command",
            format!("unknown command `{verb}`"),
        )),
    };
    done.unwrap_or_else(Reply::from)
}

async fn enqueue(
    st: &AppState,
    caller: &Caller,
    jobs: Vec<Pushed>,
    batch: bool,
) -> Vec<(String, ApiResult<()>)> {
    // One enqueue per queue, in the order the queues first appear.
    let mut groups: Vec<(String, Vec<Pushed>)> = Vec::new();
    let mut slot: HashMap<String, usize> = HashMap::new();
    for p in jobs {
        let i = *slot.entry(p.queue.clone()).or_insert_with(|| {
            groups.push((p.queue.clone(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(p);
    }
    let mut out = Vec::new();
    for (queue, jobs) in groups {
        let jids: Vec<String> = jobs.iter().map(|p| p.jid.clone()).collect();
        let tasks = jobs.into_iter().map(|p| p.task).collect();
        match st.service.enqueue(caller, &queue, tasks, batch).await {
            Ok(done) => {
                for (jid, e) in jids.into_iter().zip(done) {
                    let r = if e.duplicate {
                        Err(ApiError::new(
                            ErrorKind::Conflict,
                            "duplicate_jid",
                            format!("a job with jid `{jid}` is already queued or running"),
                        ))
                    } else {
                        Ok(())
                    };
                    out.push((jid, r));
                }
            }
            Err(e) => out.extend(jids.into_iter().map(|j| (j, Err(e.clone())))),
        }
    }
    out
}

async fn push(st: &AppState, caller: &Caller, arg: &str) -> ApiResult<Reply> {
    let job: Value = parse_json("PUSH", arg)?;
    let pushed = job::from_push(job, st.clock.now()).map_err(invalid)?;
    let (_, r) = enqueue(st, caller, vec![pushed], false)
        .await
        .pop()
        .expect("one job in, one out");
    r.map(|()| Reply::Ok)
}

/// `PUSHB [jobs]`: answers a JSON object of `jid → error` for the jobs not pushed.
async fn push_batch(st: &AppState, caller: &Caller, arg: &str) -> ApiResult<Reply> {
    let jobs: Vec<Value> = parse_json("PUSHB", arg)?;
    let now = st.clock.now();
    let mut failed = serde_json::Map::new();
    let mut ok = Vec::with_capacity(jobs.len());
    for (i, j) in jobs.into_iter().enumerate() {
        let jid = j.get("jid").and_then(Value::as_str).map(str::to_owned);
        match job::from_push(j, now) {
            Ok(p) => ok.push(p),
            Err(e) => {
                failed.insert(jid.unwrap_or_else(|| format!("[{i}]")), Value::String(e));
            }
        }
    }
    if !ok.is_empty() {
        for (jid, r) in enqueue(st, caller, ok, true).await {
            if let Err(e) = r {
                failed.insert(jid, Value::String(format!("{}: {}", e.code, e.message)));
            }
        }
    }
    Ok(Reply::Bulk(Some(Value::Object(failed).to_string())))
}

/// `FETCH q1 q2 ...`: the first job of the first queue that has one, waiting up to 2 s.
async fn fetch(st: &AppState, caller: &Caller, s: &Session, arg: &str) -> ApiResult<Reply> {
    let queues: Vec<&str> = arg.split(' ').filter(|q| !q.is_empty()).collect();
    if queues.is_empty() {
        return Err(invalid(
            "FETCH names the queues to fetch from: FETCH critical default",
        ));
    }
    let max = st.config.faktory.max_fetch_queues;
    if queues.len() > max {
        return Err(invalid(format!(
            "FETCH names {} queues; the limit is {max} (faktory.max_fetch_queues)",
            queues.len()
        )));
    }
    let limits = &st.config.limits;
    let lease_ms = |secs: u64| {
        secs.saturating_mul(1_000)
            .clamp(limits.min_lease_ms, limits.max_lease_ms)
    };
    let req = Claim {
        worker: s.wid.clone().unwrap_or_else(|| "faktory".into()),
        kinds: vec![],
        max: 1,
        wait_ms: FETCH_WAIT_MS,
        lease_ms: Some(lease_ms(DEFAULT_RESERVE_S)),
    };
    let Some((_, mut tasks)) = st.service.claim_first(caller, &queues, req).await? else {
        return Ok(Reply::Bulk(None));
    };
    let Some(mut task) = tasks.pop() else {
        return Ok(Reply::Bulk(None));
    };
    let (jid, job) = job::to_job(&task);
    let token = task
        .lease
        .as_ref()
        .map(|l| l.token.clone())
        .unwrap_or_default();
    // The job's own reservation, when it asked for another than the default.
    if let Some(secs) = job.get("reserve_for").and_then(Value::as_u64) {
        if lease_ms(secs) != lease_ms(DEFAULT_RESERVE_S) {
            let hb = Heartbeat {
                id: task.id,
                lease: token.clone(),
                lease_ms: Some(lease_ms(secs)),
                progress: None,
            };
            task = st.service.heartbeat(caller, hb).await?;
        }
    }
    st.faktory.leased(
        &caller.tenant,
        &jid,
        Leased {
            id: task.id,
            token,
            wid: s.wid.clone(),
            attempt: task.attempt,
        },
    );
    Ok(Reply::Bulk(Some(job.to_string())))
}

#[derive(Deserialize)]
struct JobRef {
    jid: String,
}

/// The lease of `jid`: remembered from FETCH on this server, else read from the running task
/// that holds the jid (a job fetched through another server sharing the database, or before
/// this server restarted), or whose id it is (a task enqueued over HTTP). Either way only a
/// task leased to this connection's worker.
async fn lease_of(st: &AppState, caller: &Caller, s: &Session, jid: &str) -> ApiResult<Leased> {
    if let Some(l) = st.faktory.take_lease(&caller.tenant, jid, s.wid.as_deref()) {
        return Ok(l);
    }
    let mut candidates = st
        .service
        .unique_holders(caller, &format!("{}{jid}", job::JID_KEY))
        .await?;
    if let Ok(id) = jid.parse::<TaskId>() {
        match st.service.get(caller, id).await {
            Ok(t) => candidates.push(t),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    candidates
        .into_iter()
        .find_map(|task| match task.lease {
            Some(l) if s.wid.as_deref().is_none_or(|w| w == l.worker) && !l.token.is_empty() => {
                Some(Leased {
                    id: task.id,
                    token: l.token,
                    wid: s.wid.clone(),
                    attempt: task.attempt,
                })
            }
            _ => None,
        })
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                "unknown_jid",
                format!("no job `{jid}` is running for this worker (or its lease was lost)"),
            )
        })
}

async fn ack(st: &AppState, caller: &Caller, s: &Session, arg: &str) -> ApiResult<Reply> {
    let r: JobRef = parse_json("ACK", arg)?;
    let lease = lease_of(st, caller, s, &r.jid).await?;
    let item = Completion {
        id: lease.id,
        lease: lease.token.clone(),
        result: None,
    };
    let out = st.service.complete(caller, vec![item], false).await;
    finish(st, caller, &r.jid, lease, out)
}

#[derive(Deserialize)]
struct FailArg {
    jid: String,
    message: Option<String>,
    errtype: Option<String>,
    #[serde(default)]
    backtrace: Vec<String>,
}

async fn fail(st: &AppState, caller: &Caller, s: &Session, arg: &str) -> ApiResult<Reply> {
    let f: FailArg = parse_json("FAIL", arg)?;
    let lease = lease_of(st, caller, s, &f.jid).await?;
    let mut error = match (f.errtype.as_deref(), f.message.as_deref()) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (Some(t), None) => t.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => "failed".to_owned(),
    };
    for line in &f.backtrace {
        error.push('\n');
        error.push_str(line);
    }
    // Faktory's backoff, by the number of failures so far (the service ends the job in the
    // dead letters once its retries are spent).
    let retries = lease.attempt.saturating_sub(1);
    let report = FailureReport {
        id: lease.id,
        lease: lease.token.clone(),
        error,
        retry_in_ms: Some(job::retry_delay_ms(retries, rand::random::<u32>())),
        dead: false,
        temporary: false,
    };
    let out = st.service.fail(caller, vec![report], false).await;
    finish(st, caller, &f.jid, lease, out)
}

/// The reply to an ACK or FAIL; a lease whose outcome was not recorded for a reason that may
/// pass (storage unavailable, a limit) is kept for the client's retry.
fn finish(
    st: &AppState,
    caller: &Caller,
    jid: &str,
    lease: Leased,
    out: ApiResult<Vec<ApiResult<rota_core::Task>>>,
) -> ApiResult<Reply> {
    let r = out.and_then(|mut v| v.pop().expect("one outcome"));
    match r {
        Ok(_) => Ok(Reply::Ok),
        Err(e) => {
            if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::RateLimited) {
                st.faktory.keep_lease(&caller.tenant, jid, lease);
            }
            Err(e)
        }
    }
}

#[derive(Deserialize)]
struct Beat {
    wid: String,
}

fn beat(st: &AppState, caller: &Caller, s: &Session, arg: &str) -> ApiResult<Reply> {
    let b: Beat = parse_json("BEAT", arg)?;
    if s.wid.as_deref() != Some(b.wid.as_str()) {
        return Err(invalid(format!(
            "BEAT names worker `{}`, but this connection's HELLO named {}",
            b.wid,
            s.wid
                .as_deref()
                .map_or("none".to_owned(), |w| format!("`{w}`"))
        )));
    }
    Ok(
        match st.faktory.beat(&caller.tenant, &b.wid, st.clock.now()) {
            None => Reply::Ok,
            Some(Signal::Quiet) => Reply::Bulk(Some(r#"{"state":"quiet"}"#.into())),
            Some(Signal::Terminate) => Reply::Bulk(Some(r#"{"state":"terminate"}"#.into())),
        },
    )
}

/// The tenant's queue names.
async fn all_queues(st: &AppState, caller: &Caller) -> ApiResult<Vec<String>> {
    Ok(st
        .service
        .queues(caller)
        .await?
        .into_iter()
        .map(|q| q.name)
        .collect())
}

/// `FLUSH`: deletes every task of every queue of the tenant. The admin role only.
async fn flush(st: &AppState, caller: &Caller) -> ApiResult<Reply> {
    caller.require_admin(rota_core::auth::actions::QUEUES_PURGE, "queues/*")?;
    for q in all_queues(st, caller).await? {
        st.service.remove_tasks(caller, &q).await?;
    }
    Ok(Reply::Ok)
}

/// `QUEUE PAUSE|RESUME|REMOVE q1 q2 …` (`*` for every queue of the tenant): claims stop and
/// restart through both doors (`queues:update`), or every task of the queues is deleted
/// (`queues:purge`).
async fn queue_control(st: &AppState, caller: &Caller, arg: &str) -> ApiResult<Reply> {
    let (action, rest) = arg.split_once(' ').unwrap_or((arg, ""));
    let paused = match action {
        "PAUSE" => Some(true),
        "RESUME" => Some(false),
        "REMOVE" => None,
        other => {
            return Err(invalid(format!(
                "QUEUE takes PAUSE, RESUME or REMOVE, not `{other}`"
            )))
        }
    };
    let named: Vec<&str> = rest.split(' ').filter(|q| !q.is_empty()).collect();
    if named.is_empty() {
        return Err(invalid("QUEUE names the queues, or * for all of them"));
    }
    let queues: Vec<String> = if named.contains(&"*") {
        all_queues(st, caller).await?
    } else {
        named.into_iter().map(str::to_owned).collect()
    };
    for q in &queues {
        match paused {
            Some(p) => {
                st.service.set_paused(caller, q, p).await?;
            }
            None => {
                st.service.remove_tasks(caller, q).await?;
            }
        }
    }
    Ok(Reply::Ok)
}

/// `INFO`: the tenant's queues and their sizes, in the shape Faktory answers.
async fn info(st: &AppState, caller: &Caller) -> ApiResult<Reply> {
    let queues = st.service.queues(caller).await?;
    let mut sizes = serde_json::Map::new();
    let (mut enqueued, mut processed, mut failures) = (0u64, 0u64, 0u64);
    for q in &queues {
        enqueued += q.counts.ready;
        processed += q.counts.succeeded;
        failures += q.counts.dead;
        sizes.insert(q.name.clone(), Value::from(q.counts.ready));
    }
    let (commands, uptime) = st.faktory.activity();
    let now = st.clock.now().to_string();
    // `HH:MM:SS UTC`, from the RFC 3339 time.
    let time_of_day = now.get(11..19).unwrap_or("00:00:00");
    let workers = st.faktory.list(&caller.tenant);
    let connections: usize = workers.iter().map(|w| w.connections).sum();
    let (retries, scheduled, dead) = super::mutate::set_sizes(st, caller, &queues).await?;
    let busy: u64 = queues.iter().map(|q| q.counts.running).sum();
    let size = |n: u64| serde_json::json!({ "size": n });
    let info = serde_json::json!({
        "faktory": {
            "total_failures": failures,
            "total_processed": processed,
            "total_enqueued": enqueued,
            "total_queues": queues.len(),
            "queues": sizes,
            "tasks": {
                "Retries": size(retries),
                "Scheduled": size(scheduled),
                "Dead": size(dead),
                "Busy": size(busy),
                "Workers": size(workers.len() as u64),
            },
        },
        "server": {
            "description": "Rota",
            "faktory_version": env!("CARGO_PKG_VERSION"),
            "uptime": uptime,
            "connections": connections,
            "command_count": commands,
            "used_memory_mb": 0,
        },
        "now": now,
        "server_utc_time": format!("{time_of_day} UTC"),
    });
    Ok(Reply::Bulk(Some(info.to_string())))
}
