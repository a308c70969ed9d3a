//! The documented form of each bounded value the API takes (names, ids, durations, counts):
//! schema-only types that request shapes name with `#[schema(value_type = ...)]`. Their
//! bounds are read from the server's `Limits` and constants, not written again: the derived
//! document has the defaults, and `/openapi.json` serves the server's own limits
//! ([`state_limits`]), so what the document says is what this server enforces.

use rota_core::limits::{MAX_DELAY_CEILING_MS, MAX_QUEUE_NAME_LEN};
use rota_core::Limits;
use std::borrow::Cow;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
    Type,
};
use utoipa::openapi::{OpenApi, Ref, RefOr, Schema};
use utoipa::ToSchema;

/// The task ids `TaskId::from_str` accepts (8-4-4-4-12 hex): the time's top nibble 0, version
/// 7, variant `10`, and the 54 bits below the sequence 0 (so the fourth group ends in `[048c]0`
/// and the last is all zeros). `tests::task_id_pattern_is_the_parser` holds the two together.
pub const TASK_ID_PATTERN: &str =
    "^0[0-9A-Fa-f]{7}-[0-9A-Fa-f]{4}-7[0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f][048Cc]0-0{12}$";

/// The characters every identifier (queue, tenant, role, schedule names) is made of.
const IDENTIFIER_CHARS: &str = "[A-Za-z0-9._-]";

fn string(description: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

fn integer(description: String, min: u64, max: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
}

/// A name of 1 to `max` identifier characters (`limits::validate_identifier`).
fn identifier(what: &str, max: usize) -> ObjectBuilder {
    string(format!(
        "{what}: 1 to {max} characters from A-Z, a-z, 0-9, '.', '_' and '-'"
    ))
    .min_length(Some(1))
    .max_length(Some(max))
    .pattern(Some(format!("^{IDENTIFIER_CHARS}{{1,{max}}}$")))
}

/// Declares a schema-only type, built for a server's limits `l` by `with`; its component name
/// is the type's name.
macro_rules! schema {
    ($(#[$doc:meta])* $name:ident, |$l:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl $name {
            /// The schema for a server with limits `l`.
            #[allow(unused_variables)]
            pub fn with($l: &Limits) -> RefOr<Schema> {
                $body.into()
            }
        }
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                Self::with(&Limits::default())
            }
        }
        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

schema!(
    /// A queue name (`limits::validate_queue_name`): `.` and `..` are refused, since every
    /// HTTP client resolves them away as path segments.
    QueueName, |l|
    {
        let max = MAX_QUEUE_NAME_LEN;
        let c = IDENTIFIER_CHARS;
        let d = "[A-Za-z0-9_-]";
        string(format!(
            "a queue name: 1 to {max} characters from A-Z, a-z, 0-9, '.', '_' and '-', \
             except `.` and `..`"
        ))
        .min_length(Some(1))
        .max_length(Some(max))
        // Any name but `.` and `..`, without a look-ahead (not every generator has one):
        // one that starts with a non-dot, or `.` then a non-dot, or `..` then anything.
        .pattern(Some(format!(
            "^({d}{c}{{0,{a}}}|\\.{d}{c}{{0,{b}}}|\\.\\.{c}{{1,{b}}})$",
            a = max - 1,
            b = max - 2
        )))
    }
);

schema!(
    /// A tenant, role or schedule name (`auth::validate_name`).
    ShortName, |l|
    identifier(
        "a tenant, role or schedule name",
        rota_core::auth::MAX_NAME_LEN
    )
);

schema!(
    /// A task id as this server issues it (`rota_core::id`): a UUIDv7 whose top four bits of
    /// time are 0 and whose last 54 bits are 0, hex in either case.
    TaskIdText, |l|
    string("a task id, as the server issued it (a UUIDv7)".to_owned())
        .min_length(Some(36))
        .max_length(Some(36))
        .pattern(Some(TASK_ID_PATTERN))
        .examples(["019ab8f0-2c4e-7000-8000-000000000000"])
);

schema!(
    /// A kind, unique key, tag or worker name (`service::check_name`).
    Name, |l|
    {
        let max = l.max_name_len;
        string(format!(
            "1 to limits.max_name_len (here {max}) bytes of UTF-8"
        ))
        .min_length(Some(1))
        .max_length(Some(max))
    }
);

schema!(
    /// A concurrency limit (`rota_core::flow::MAX_LIMIT`).
    Limit, |l|
    {
        let max = u64::from(rota_core::flow::MAX_LIMIT);
        integer(format!("1 to {max}"), 1, max)
    }
);

schema!(
    /// A lease length (`service::check_lease_ms`).
    LeaseMs, |l|
    {
        integer(
            format!(
                "milliseconds, limits.min_lease_ms to limits.max_lease_ms (here {} to {})",
                l.min_lease_ms, l.max_lease_ms
            ),
            l.min_lease_ms,
            l.max_lease_ms,
        )
    }
);

schema!(
    /// A delay (`Limits::check_delay`).
    DelayMs, |l|
    integer(
        format!(
            "milliseconds, at most limits.max_delay_ms (here {}; at most {MAX_DELAY_CEILING_MS}, \
             about ten years)",
            l.max_delay_ms
        ),
        0,
        l.max_delay_ms,
    )
);

schema!(
    /// How long a request may wait (`limits.max_wait_ms`).
    WaitMs, |l|
    {
        let max = l.max_wait_ms;
        integer(
            format!("milliseconds, at most limits.max_wait_ms (here {max})"),
            0,
            max,
        )
    }
);

schema!(
    /// A task's attempts (`service::check_max_attempts`).
    MaxAttempts, |l|
    {
        let max = crate::service::MAX_ATTEMPTS_CEILING as u64;
        integer(format!("1 to {max}"), 1, max)
    }
);

schema!(
    /// How many tasks one claim may return (`limits.max_claim`).
    ClaimMax, |l|
    {
        let max = l.max_claim as u64;
        integer(
            format!("1 to limits.max_claim (here {max}); default 1"),
            1,
            max,
        )
    }
);

schema!(
    /// A page size (`limits.max_list`).
    ListLimit, |l|
    {
        let max = l.max_list as u64;
        integer(
            format!("1 to limits.max_list (here {max}); default 100"),
            1,
            max,
        )
    }
);

schema!(
    /// An event cursor: 0 or a `cursor` an event carried.
    EventCursor, |l|
    integer("an event cursor, 0 or more".to_owned(), 0, i64::MAX as u64)
);

/// An array of `item`s (a component's name) with at most `max`, and at least `min`.
fn array(item: &str, min: usize, max: usize, description: String) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(item))
        .min_items((min > 0).then_some(min))
        .max_items(Some(max))
        .description(Some(description))
}

schema!(
    /// A task's tags (`service::check_task`).
    Tags, |l|
    {
        let max = l.max_tags;
        array("Name", 0, max, format!("at most limits.max_tags (here {max})"))
    }
);

schema!(
    /// A claim's kinds filter (`limits.max_claim_kinds`).
    ClaimKinds, |l|
    {
        let max = l.max_claim_kinds;
        array(
            "Name",
            0,
            max,
            format!("at most limits.max_claim_kinds (here {max}); empty means any kind"),
        )
    }
);

/// A batch body: `{"<field>": [<item>, ...]}` and nothing else, with 1 to `limits.max_batch`
/// items (`service::check_batch_size`; more answer 413).
fn batch(l: &Limits, field: &str, item: &str) -> ObjectBuilder {
    let max = l.max_batch;
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            field,
            array(item, 1, max, format!("1 to limits.max_batch (here {max})")),
        )
        .required(field)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

schema!(
    /// `POST /v1/queues/{queue}/tasks`: one task, or `{"tasks": [...]}` (a task beside
    /// `tasks` is refused, so exactly one of the two forms matches).
    EnqueueBody, |l|
    OneOfBuilder::new()
        .item(Ref::from_schema_name("TaskInput"))
        .item(batch(l, "tasks", "TaskInput"))
        .description(Some("one task, or a batch as {\"tasks\": [...]}"))
);

schema!(
    /// `POST /v1/tasks/complete`.
    CompleteBatch, |l|
    batch(l, "items", "CompleteItem")
);

schema!(
    /// `POST /v1/tasks/fail`.
    FailBatch, |l|
    batch(l, "items", "FailItem")
);

schema!(
    /// A state purge accepts (`TaskState::is_final`).
    FinalState, |l|
    string("a final state".to_owned()).enum_values(Some(
        rota_core::TaskState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
    ))
);

schema!(
    /// Where a webhook or a task's outcome is POSTed (`webhooks::target::check_form`).
    TargetUrl, |l|
    {
        let max = rota_core::webhooks::MAX_URL_LEN;
        string(format!(
            "an http or https URL without credentials, at most {max} bytes; its host must not \
             be a private, loopback or link-local address unless webhooks.allow_private"
        ))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some("^[Hh][Tt][Tt][Pp][Ss]?://"))
    }
);

schema!(
    /// A webhook's description (`service::webhooks::MAX_DESCRIPTION`).
    Description, |l|
    {
        let max = crate::service::MAX_WEBHOOK_DESCRIPTION;
        string(format!("at most {max} bytes")).max_length(Some(max))
    }
);

schema!(
    /// A tenant's event retention (`auth::check_event_retention`).
    EventRetentionMs, |l|
    {
        let (lo, hi) = rota_core::auth::EVENT_RETENTION_RANGE_MS;
        integer(
            format!("milliseconds, {lo} (a minute) to {hi} (ten years)"),
            lo,
            hi,
        )
    }
);

schema!(
    /// A maintenance banner (`maintenance::MAX_MESSAGE_LEN`).
    BannerMessage, |l|
    {
        let max = rota_core::maintenance::MAX_MESSAGE_LEN;
        string(format!("1 to {max} characters, not only whitespace"))
            .min_length(Some(1))
            .max_length(Some(max))
            .pattern(Some("\\S"))
    }
);

schema!(
    /// A filter of the audit log: an actor, action or target.
    AuditText, |l|
    string("1 to 256 characters".into())
        .min_length(Some(1))
        .max_length(Some(256))
);

schema!(
    /// Where a read of the audit log goes on (`next_cursor` of the page before).
    AuditCursorText, |l|
    string("`next_cursor` of the previous page".into())
        .pattern(Some(rota_core::audit::AuditCursor::PATTERN))
);

schema!(
    /// Entries in one page of the audit log.
    AuditLimit, |l|
    {
        let max = rota_core::audit::MAX_AUDIT_PAGE as u64;
        integer(format!("1 to {max}; default 100"), 1, max)
    }
);

/// Every schema-only type above, built for limits `l`.
fn all(l: &Limits) -> Vec<(String, RefOr<Schema>)> {
    macro_rules! each {
        ($($t:ident),*) => {
            vec![$((<$t as ToSchema>::name().into_owned(), $t::with(l))),*]
        };
    }
    each!(
        QueueName,
        ShortName,
        TaskIdText,
        Name,
        LeaseMs,
        DelayMs,
        WaitMs,
        MaxAttempts,
        ClaimMax,
        ListLimit,
        EventCursor,
        Tags,
        ClaimKinds,
        EnqueueBody,
        CompleteBatch,
        FailBatch,
        FinalState,
        TargetUrl,
        EveryMs,
        Description,
        EventRetentionMs,
        BannerMessage,
        EnqueueAnswer,
        AuditText,
        AuditCursorText,
        AuditLimit
    )
}

/// Puts every schema-only type in the document, with the bounds of limits `l`: the server
/// serves its document so, so what it says is what this server enforces.
pub fn state_limits(doc: &mut OpenApi, l: &Limits) {
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .extend(all(l));
}

/// The document as derived: every schema-only type with the default limits.
pub struct DefaultLimits;

impl utoipa::Modify for DefaultLimits {
    fn modify(&self, doc: &mut OpenApi) {
        state_limits(doc, &Limits::default());
    }
}

schema!(
    /// A schedule's interval (`ScheduleSpec::timing`, `Limits::check_delay`).
    EveryMs,
    |l| {
        let min = rota_core::schedule::MIN_EVERY_MS;
        integer(
            format!(
                "milliseconds, {min} to limits.max_delay_ms (here {})",
                l.max_delay_ms
            ),
            min,
            l.max_delay_ms,
        )
    }
);

schema!(
    /// What enqueue answers: the task, or `{"tasks": [...]}` for a batch.
    EnqueueAnswer,
    |l| OneOfBuilder::new()
        .item(Ref::from_schema_name("EnqueuedTask"))
        .item(Ref::from_schema_name("EnqueuedBatch"))
);

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    fn pattern_of(schema: RefOr<Schema>) -> regex::Regex {
        let RefOr::T(Schema::Object(o)) = schema else {
            panic!("a string schema");
        };
        regex::Regex::new(&o.pattern.expect("a pattern")).unwrap()
    }

    /// The task-id pattern accepts exactly what `TaskId::from_str` accepts: ids the generator
    /// issues, in either case, and none of the near misses (another version, variant, a set
    /// bit below the sequence, a time past 44 bits, a wrong length).
    #[test]
    fn task_id_pattern_is_the_parser() {
        let re = pattern_of(TaskIdText::schema());
        let mut ids = rota_core::id::IdGenerator::default();
        let mut samples: Vec<String> = (0..200)
            .map(|i| {
                ids.next(rota_core::Timestamp(1_700_000_000_000 + i * 7_919))
                    .to_string()
            })
            .collect();
        samples.extend(samples.clone().iter().map(|s| s.to_uppercase()));
        let good = samples[0].clone();
        let edit = |at: usize, c: char| {
            let mut s = good.clone().into_bytes();
            s[at] = c as u8;
            String::from_utf8(s).unwrap()
        };
        samples.extend([
            edit(0, '1'),  // the time's top nibble
            edit(14, '4'), // version 4
            edit(19, 'c'), // variant 110
            edit(22, '1'), // a bit below the sequence
            edit(35, '1'), // the last group is all zeros
            edit(8, 'x'),  // a dash
            edit(3, 'g'),  // not hex
            "019ab8f0-2c4e-4000-8000-000000000000".into(),
            format!("{good}0"),
            good[1..].to_owned(),
            String::new(),
        ]);
        for s in samples {
            assert_eq!(
                re.is_match(&s),
                s.parse::<rota_core::TaskId>().is_ok(),
                "the pattern and the parser disagree on {s:?}"
            );
        }
    }

    /// The name patterns accept exactly what the validators accept.
    #[test]
    fn name_patterns_are_the_validators() {
        let queue = pattern_of(QueueName::schema());
        let short = pattern_of(ShortName::schema());
        let long = "q".repeat(MAX_QUEUE_NAME_LEN);
        let mut names: Vec<String> = [
            "",
            ".",
            "..",
            "...",
            ".a",
            "a.",
            "..a",
            "a..",
            "emails",
            "sync.hourly",
            "A_b-9",
            "has space",
            "slash/y",
            "ünï",
            "-",
            "_",
            "a*",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.extend([
            long.clone(),
            format!("{long}q"),
            format!(".{}", &long[1..]),
            format!("..{}", &long[2..]),
            "n".repeat(64),
            "n".repeat(65),
        ]);
        for n in names {
            assert_eq!(
                queue.is_match(&n),
                rota_core::limits::validate_queue_name(&n).is_ok(),
                "queue name {n:?}"
            );
            assert_eq!(
                short.is_match(&n),
                rota_core::auth::validate_name("name", &n).is_ok(),
                "tenant, role or schedule name {n:?}"
            );
        }
    }
}
