//! Faktory jobs and Rota tasks, one to the other.
//!
//! A job pushed over Faktory becomes a task whose `kind` is the `jobtype`, whose payload is
//! the job itself as the client sent it (so `args`, `custom` and fields Rota does not know
//! come back unchanged on FETCH, and an HTTP worker sees the whole job), tagged `faktory`. A
//! task enqueued over HTTP is fetched as a job whose `jid` is the task id and whose `args` is
//! the payload (wrapped in an array unless it is one).

use rota_core::{NewTask, OnDuplicate, Task, Timestamp};
use serde_json::{Map, Value};

/// The tag that marks a task pushed over Faktory.
pub const TAG: &str = "faktory";
/// The prefix of the unique key that refuses a second live job with the same `jid`.
pub const JID_KEY: &str = "faktory-jid:";
/// Faktory's default retry count: a job is tried once and retried 25 times.
pub const DEFAULT_RETRY: i64 = 25;
/// Faktory's default reservation, 30 minutes: the lease of a fetched job unless it asks for
/// another `reserve_for`.
pub const DEFAULT_RESERVE_S: u64 = 1_800;
/// Faktory's priorities run 1 to 9, default 5; Rota's default is 0.
const PRIORITY_OFFSET: i32 = 5;

/// A pushed job, checked: the queue it goes to and the task it becomes.
#[derive(Debug)]
pub struct Pushed {
    pub jid: String,
    pub queue: String,
    pub task: NewTask,
}

fn text<'a>(job: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, String> {
    match job.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("`{field}` must be a string, not {other}")),
    }
}

fn int(job: &Map<String, Value>, field: &str) -> Result<Option<i64>, String> {
    match job.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("`{field}` must be an integer, not {v}")),
    }
}

/// `custom.<field>`, a string when present.
fn custom_text(job: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match job.get("custom").and_then(|c| c.get(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`custom.{field}` must be a string")),
    }
}

/// Reads a job as PUSH and PUSHB send it. Sizes and names are checked by the service like
/// any task's; here only the job's own shape.
pub fn from_push(job: Value, now: Timestamp) -> Result<Pushed, String> {
    let Value::Object(mut job) = job else {
        return Err("a job must be a JSON object".into());
    };
    let jid = text(&job, "jid")?
        .filter(|j| !j.is_empty())
        .ok_or("a job needs a `jid`: a unique id the client chooses")?
        .to_owned();
    let jobtype = text(&job, "jobtype")?
        .filter(|j| !j.is_empty())
        .ok_or("a job needs a `jobtype`")?
        .to_owned();
    if !matches!(job.get("args"), Some(Value::Array(_))) {
        return Err("a job needs `args`, an array".into());
    }
    let queue = text(&job, "queue")?.unwrap_or("default").to_owned();
    let priority = int(&job, "priority")?.unwrap_or(i64::from(PRIORITY_OFFSET));
    if !(1..=9).contains(&priority) {
        return Err(format!("`priority` is {priority}; use 1 to 9"));
    }
    let run_at = match text(&job, "at")? {
        None | Some("") => None,
        Some(at) => Some(
            serde_json::from_value::<Timestamp>(Value::String(at.to_owned()))
                .map_err(|_| format!("`at` is `{at}`, not an RFC 3339 time"))?,
        ),
    };
    let retry = int(&job, "retry")?.unwrap_or(DEFAULT_RETRY);
    if let Some(r) = int(&job, "reserve_for")? {
        if r < 60 {
            return Err(format!(
                "`reserve_for` is {r}; Faktory asks for at least 60 seconds"
            ));
        }
    }
    // Faktory's `retry`: how many times to retry; 0 and negative values fail once for good
    // (Rota keeps every such job in the dead letters rather than discarding one).
    let max_attempts = u32::try_from(retry.max(0) + 1).unwrap_or(u32::MAX);
    // Flow control: the job's group rides in `custom` (Faktory's place for what it does not
    // define), so a Faktory client needs no change to name one.
    let group = match job.get("custom").and_then(|c| c.get("group")) {
        None | Some(Value::Null) => None,
        Some(Value::String(g)) if !g.is_empty() => Some(g.clone()),
        Some(_) => return Err("`custom.group` must be a non-empty string".into()),
    };
    // The trace context rides in `custom` too (docs/telemetry.md): W3C's field names.
    let traceparent = custom_text(&job, "traceparent")?;
    let tracestate = custom_text(&job, "tracestate")?;
    job.entry("created_at")
        .or_insert_with(|| Value::String(now.to_string()));
    job.insert("queue".into(), Value::String(queue.clone()));
    let payload = serde_json::value::RawValue::from_string(Value::Object(job).to_string())
        .map_err(|e| format!("the job is not JSON: {e}"))?;
    Ok(Pushed {
        task: NewTask {
            kind: jobtype,
            payload,
            priority: priority as i32 - PRIORITY_OFFSET,
            run_at,
            max_attempts: Some(max_attempts),
            unique_key: Some(format!("{JID_KEY}{jid}")),
            // The jid is the job's identity: Faktory refuses a second job with a live jid
            // (`duplicate_jid`) and has no replacing push, so this door never debounces.
            on_duplicate: OnDuplicate::Keep,
            tags: vec![TAG.into()],
            callback_url: None,
            group,
            depends_on: Vec::new(),
            on_dependency_failure: Default::default(),
            workflow: None,
            traceparent,
            tracestate,
        },
        jid,
        queue,
    })
}

/// The job a claimed task is handed out as, and its `jid`.
pub fn to_job(task: &Task) -> (String, Value) {
    let pushed = task.tags.iter().any(|t| t == TAG);
    let parsed: Value = serde_json::from_str(task.payload.get()).unwrap_or(Value::Null);
    let mut job = match parsed {
        Value::Object(m) if pushed && m.get("jid").is_some_and(Value::is_string) => m,
        other => {
            let args = match other {
                Value::Array(a) => Value::Array(a),
                v => Value::Array(vec![v]),
            };
            let mut m = Map::new();
            m.insert("jid".into(), Value::String(task.id.to_string()));
            m.insert("jobtype".into(), Value::String(task.kind.clone()));
            m.insert("args".into(), args);
            m.insert(
                "created_at".into(),
                Value::String(task.created_at.to_string()),
            );
            m
        }
    };
    job.insert("queue".into(), Value::String(task.queue.clone()));
    // What Faktory's server fills in on push, for clients that read them back.
    job.entry("reserve_for")
        .or_insert_with(|| Value::from(DEFAULT_RESERVE_S));
    job.entry("retry")
        .or_insert_with(|| Value::from(i64::from(task.max_attempts.saturating_sub(1))));
    job.entry("priority")
        .or_insert_with(|| Value::from((task.priority + PRIORITY_OFFSET).clamp(1, 9)));
    job.insert(
        "enqueued_at".into(),
        Value::String(task.run_at.max(task.created_at).to_string()),
    );
    // The claim's trace context (the attempt's, while tracing is on), where a Faktory
    // client's middleware looks for it.
    if let Some(parent) = &task.traceparent {
        let custom = job
            .entry("custom")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(c) = custom {
            c.insert("traceparent".into(), Value::String(parent.clone()));
            match &task.tracestate {
                Some(s) => c.insert("tracestate".into(), Value::String(s.clone())),
                None => c.remove("tracestate"),
            };
        }
    }
    if let Some(last) = task.errors.last() {
        job.insert(
            "failure".into(),
            serde_json::json!({
                "retry_count": task.errors.len(),
                "failed_at": last.at.to_string(),
                "message": last.message,
            }),
        );
    }
    let jid = job
        .get("jid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    (jid, Value::Object(job))
}

/// Faktory's wait before retry number `count` (0 for the first): `count⁴ + 15 + rand(30) ×
/// (count + 1)` seconds.
pub fn retry_delay_ms(count: u32, rand30: u32) -> u64 {
    let c = u64::from(count.min(1_000));
    (c.pow(4) + 15 + u64::from(rand30 % 30) * (c + 1)) * 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    #[test]
    fn a_pushed_job_becomes_a_task_and_comes_back_unchanged() {
        let job = serde_json::json!({"jid": "abc", "jobtype": "Send", "args": [1, "x"],
            "queue": "mail", "priority": 9, "retry": 3, "custom": {"k": true}, "extra": 1});
        let p = from_push(job, NOW).unwrap();
        assert_eq!((p.jid.as_str(), p.queue.as_str()), ("abc", "mail"));
        assert_eq!(p.task.kind, "Send");
        assert_eq!(p.task.priority, 4);
        assert_eq!(p.task.max_attempts, Some(4));
        assert_eq!(p.task.unique_key.as_deref(), Some("faktory-jid:abc"));
        assert_eq!(p.task.group, None);
        let task = Task {
            id: rota_core::TaskId::from_i64(1 << 20),
            queue: "mail".into(),
            kind: "Send".into(),
            payload: p.task.payload.clone(),
            priority: 4,
            state: rota_core::TaskState::Running,
            attempt: 1,
            max_attempts: 4,
            run_at: NOW,
            created_at: NOW,
            updated_at: NOW,
            finished_at: None,
            started_at: None,
            lease: None,
            progress: None,
            result: None,
            errors: vec![],
            unique_key: None,
            tags: vec![TAG.into()],
            callback_url: None,
            group: None,
            depends_on: vec![],
            on_dependency_failure: Default::default(),
            workflow: None,
            traceparent: None,
            tracestate: None,
        };
        let (jid, back) = to_job(&task);
        assert_eq!(jid, "abc");
        assert_eq!(back["args"], serde_json::json!([1, "x"]));
        assert_eq!(back["custom"], serde_json::json!({"k": true}));
        assert_eq!(back["extra"], 1);
        assert_eq!(back["queue"], "mail");
        assert!(back.get("failure").is_none());

        // A task enqueued over HTTP: the task id is the jid, the payload the one argument.
        let http = Task {
            payload: serde_json::value::RawValue::from_string("{\"to\":\"a\"}".into()).unwrap(),
            tags: vec![],
            callback_url: None,
            ..task
        };
        let (jid, job) = to_job(&http);
        assert_eq!(jid, http.id.to_string());
        assert_eq!(job["args"], serde_json::json!([{"to": "a"}]));
        assert_eq!(job["jobtype"], "Send");
    }

    #[test]
    fn the_trace_context_rides_in_custom_both_ways() {
        const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let job = serde_json::json!({"jid": "t", "jobtype": "Send", "args": [],
            "custom": {"traceparent": PARENT, "tracestate": "a=1", "k": 2}});
        let p = from_push(job, NOW).unwrap();
        assert_eq!(p.task.traceparent.as_deref(), Some(PARENT));
        assert_eq!(p.task.tracestate.as_deref(), Some("a=1"));
        let bad = serde_json::json!({"jid": "t", "jobtype": "S", "args": [],
            "custom": {"traceparent": 7}});
        assert_eq!(
            from_push(bad, NOW).unwrap_err(),
            "`custom.traceparent` must be a string"
        );

        // A claim's context (here another span of the trace) replaces the pushed one.
        let claimed = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
        let mut task = rota_core::lifecycle::enqueued(
            rota_core::TaskId::from_i64(1),
            "default",
            &p.task,
            3,
            NOW,
        );
        task.tags = vec![TAG.into()];
        task.traceparent = Some(claimed.into());
        task.tracestate = None;
        let (_, back) = to_job(&task);
        assert_eq!(back["custom"]["traceparent"], claimed);
        assert!(back["custom"].get("tracestate").is_none());
        assert_eq!(back["custom"]["k"], 2);
    }

    #[test]
    fn malformed_jobs_are_refused_with_the_reason() {
        let bad = |v: Value| from_push(v, NOW).unwrap_err();
        assert!(bad(serde_json::json!([1])).contains("object"));
        assert!(bad(serde_json::json!({"jobtype": "x", "args": []})).contains("jid"));
        assert!(bad(serde_json::json!({"jid": "j", "args": []})).contains("jobtype"));
        assert!(bad(serde_json::json!({"jid": "j", "jobtype": "x"})).contains("args"));
        assert!(
            bad(serde_json::json!({"jid": "j", "jobtype": "x", "args": [], "at": "soon"}))
                .contains("RFC 3339")
        );
        assert!(
            bad(serde_json::json!({"jid": "j", "jobtype": "x", "args": [], "priority": 0}))
                .contains("1 to 9")
        );
        assert!(
            bad(serde_json::json!({"jid": "j", "jobtype": "x", "args": [], "reserve_for": 5}))
                .contains("60")
        );
        assert!(bad(
            serde_json::json!({"jid": "j", "jobtype": "x", "args": [], "custom": {"group": 7}})
        )
        .contains("custom.group"));
        let grouped = serde_json::json!({"jid": "j", "jobtype": "x", "args": [],
            "custom": {"group": "org-42"}});
        assert_eq!(
            from_push(grouped, NOW).unwrap().task.group.as_deref(),
            Some("org-42")
        );
        let scheduled = serde_json::json!({"jid": "j", "jobtype": "x", "args": [],
            "at": "2027-01-15T10:00:00Z", "retry": -1});
        let p = from_push(scheduled, NOW).unwrap();
        assert!(p.task.run_at.is_some());
        assert_eq!(p.task.max_attempts, Some(1));
    }

    #[test]
    fn retries_wait_as_faktory_waits() {
        assert_eq!(retry_delay_ms(0, 0), 15_000);
        assert_eq!(retry_delay_ms(0, 29), 44_000);
        assert_eq!(retry_delay_ms(2, 10), (16 + 15 + 30) * 1_000);
    }
}
