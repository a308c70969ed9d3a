//! Tenants, API key records, roles and the policy rules that decide what a caller may do.
//!
//! A permission is an `(action, resource)` pair such as `("tasks:claim", "queues/emails")`. A role
//! is a list of rules `(resource, action, effect)` whose `resource` and `action` may contain `*`
//! wildcards. A caller holding several roles may do something only if some rule of some role
//! allows it and no rule of any role denies it: deny wins. The built-in roles are fixed rule
//! lists; custom roles are documents stored per tenant.
//!
//! Pure logic: records, validation and evaluation. Hashing, token generation and storage live
//! elsewhere.

mod records;
mod scope;

pub use records::*;
pub use scope::{Scope, MAX_SCOPE_ITEMS};

use serde::{Deserialize, Serialize};

/// The actions, by resource kind. `queues/<name>` carries task and queue actions, `keys/<id>`
/// key management, `roles/<name>` role management, `tenants/<name>` tenant management (which
/// only the built-in `admin` role can be granted).
pub mod actions {
    pub const TASKS_ENQUEUE: &str = "tasks:enqueue";
    pub const TASKS_READ: &str = "tasks:read";
    pub const TASKS_CLAIM: &str = "tasks:claim";
    pub const TASKS_HEARTBEAT: &str = "tasks:heartbeat";
    pub const TASKS_COMPLETE: &str = "tasks:complete";
    pub const TASKS_FAIL: &str = "tasks:fail";
    pub const TASKS_CANCEL: &str = "tasks:cancel";
    pub const TASKS_RETRY: &str = "tasks:retry";
    pub const QUEUES_READ: &str = "queues:read";
    pub const QUEUES_UPDATE: &str = "queues:update";
    pub const QUEUES_PURGE: &str = "queues:purge";
    pub const KEYS_READ: &str = "keys:read";
    pub const KEYS_CREATE: &str = "keys:create";
    pub const KEYS_REVOKE: &str = "keys:revoke";
    pub const ROLES_READ: &str = "roles:read";
    pub const ROLES_WRITE: &str = "roles:write";
    pub const TENANTS_READ: &str = "tenants:read";
    pub const TENANTS_WRITE: &str = "tenants:write";
    /// See the worker processes connected through the Faktory door (`workers/<wid>`).
    pub const WORKERS_READ: &str = "workers:read";
    /// Ask a worker process to quiet down or stop.
    pub const WORKERS_SIGNAL: &str = "workers:signal";
    /// See schedules (`schedules/<name>`).
    pub const SCHEDULES_READ: &str = "schedules:read";
    /// Create, change, pause, trigger and delete schedules (a schedule's writer must also
    /// hold `tasks:enqueue` on its queue).
    pub const SCHEDULES_WRITE: &str = "schedules:write";
    /// See webhooks and their deliveries (`webhooks/<id>`).
    pub const WEBHOOKS_READ: &str = "webhooks:read";
    /// Create, change, rotate, delete webhooks and retry deliveries (a webhook's writer must
    /// also hold `tasks:read` on the queues it covers).
    pub const WEBHOOKS_WRITE: &str = "webhooks:write";
    /// See inbound webhooks and their recent requests (`hooks/<id>`).
    pub const HOOKS_READ: &str = "hooks:read";
    /// Create, change, rotate and delete inbound webhooks (a hook's writer must also hold
    /// `tasks:enqueue` on its queue and kind).
    pub const HOOKS_WRITE: &str = "hooks:write";
    /// Turn maintenance mode on, announce it or end it (`maintenance`; admin only).
    pub const MAINTENANCE_WRITE: &str = "maintenance:write";
    /// Read the audit log (`audit`): an admin every tenant's, anyone else its own tenant's.
    pub const AUDIT_READ: &str = "audit:read";

    /// Every action, for validating custom rules and for documentation.
    pub const ALL: &[&str] = &[
        TASKS_ENQUEUE,
        TASKS_READ,
        TASKS_CLAIM,
        TASKS_HEARTBEAT,
        TASKS_COMPLETE,
        TASKS_FAIL,
        TASKS_CANCEL,
        TASKS_RETRY,
        QUEUES_READ,
        QUEUES_UPDATE,
        QUEUES_PURGE,
        KEYS_READ,
        KEYS_CREATE,
        KEYS_REVOKE,
        ROLES_READ,
        ROLES_WRITE,
        TENANTS_READ,
        TENANTS_WRITE,
        WORKERS_READ,
        WORKERS_SIGNAL,
        SCHEDULES_READ,
        SCHEDULES_WRITE,
        WEBHOOKS_READ,
        WEBHOOKS_WRITE,
        HOOKS_READ,
        HOOKS_WRITE,
        MAINTENANCE_WRITE,
        AUDIT_READ,
    ];
}

/// The role that may act in every tenant and manage tenants.
pub const ADMIN_ROLE: &str = "admin";
pub const BUILTIN_ROLES: &[&str] = &[ADMIN_ROLE, "tenant-admin", "producer", "worker", "reader"];

pub fn queue_resource(queue: &str) -> String {
    format!("queues/{queue}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// One policy rule. `resource` and `action` match with `*` standing for any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// e.g. `queues/emails-*`, `keys/*`, `*`
    pub resource: String,
    /// e.g. `tasks:claim`, `tasks:*`, `*`
    pub action: String,
    pub effect: Effect,
}

impl Rule {
    pub fn new(resource: &str, action: &str, effect: Effect) -> Self {
        Rule {
            resource: resource.to_owned(),
            action: action.to_owned(),
            effect,
        }
    }

    pub fn matches(&self, action: &str, resource: &str) -> bool {
        glob_match(&self.action, action) && glob_match(&self.resource, resource)
    }

    /// Checks the rule names something that can exist: a known action (or a pattern matching
    /// one) and a resource of a known kind.
    pub fn validate(&self) -> Result<(), String> {
        if self.action.is_empty() || self.action.len() > 64 {
            return Err("action must be 1 to 64 characters".into());
        }
        if !actions::ALL.iter().any(|a| glob_match(&self.action, a)) {
            return Err(format!(
                "action `{}` matches no action; actions are {}",
                self.action,
                actions::ALL.join(", ")
            ));
        }
        if self.resource.is_empty() || self.resource.len() > 256 {
            return Err("resource must be 1 to 256 characters".into());
        }
        let kinds = [
            "queues/",
            "keys/",
            "roles/",
            "tenants/",
            "workers/",
            "schedules/",
            "webhooks/",
            "hooks/",
        ];
        // `audit` (the audit log) is one resource, not a kind of them.
        if !kinds
            .iter()
            .any(|k| glob_match(&self.resource, &format!("{k}x")) || self.resource.starts_with(k))
            && !glob_match(&self.resource, "audit")
        {
            return Err(format!(
                "resource `{}` names nothing; use queues/<name>, keys/<id>, roles/<name>, tenants/<name>, workers/<wid>, schedules/<name>, webhooks/<id>, hooks/<id> or audit, with * as a wildcard",
                self.resource
            ));
        }
        Ok(())
    }
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The rules of a built-in role, or `None` if `name` is not one.
pub fn builtin_rules(name: &str) -> Option<&'static [Rule]> {
    use std::sync::OnceLock;
    static ROLES: OnceLock<Vec<(&'static str, Vec<Rule>)>> = OnceLock::new();
    let roles = ROLES.get_or_init(|| {
        use actions::*;
        let allow = |actions: &[&str]| {
            actions
                .iter()
                .map(|a| Rule::new("queues/*", a, Effect::Allow))
                .collect::<Vec<_>>()
        };
        vec![
            (ADMIN_ROLE, vec![Rule::new("*", "*", Effect::Allow)]),
            (
                "tenant-admin",
                vec![
                    Rule::new("queues/*", "*", Effect::Allow),
                    Rule::new("keys/*", "*", Effect::Allow),
                    Rule::new("roles/*", "*", Effect::Allow),
                    Rule::new("workers/*", "*", Effect::Allow),
                    Rule::new("schedules/*", "*", Effect::Allow),
                    Rule::new("webhooks/*", "*", Effect::Allow),
                    Rule::new("hooks/*", "*", Effect::Allow),
                    Rule::new("audit", AUDIT_READ, Effect::Allow),
                ],
            ),
            ("producer", {
                let mut r = allow(&[TASKS_ENQUEUE, TASKS_READ, QUEUES_READ]);
                r.push(Rule::new("schedules/*", SCHEDULES_READ, Effect::Allow));
                r
            }),
            (
                "worker",
                allow(&[
                    TASKS_CLAIM,
                    TASKS_HEARTBEAT,
                    TASKS_COMPLETE,
                    TASKS_FAIL,
                    TASKS_READ,
                    QUEUES_READ,
                ]),
            ),
            ("reader", {
                let mut r = allow(&[TASKS_READ, QUEUES_READ]);
                r.push(Rule::new("workers/*", WORKERS_READ, Effect::Allow));
                r.push(Rule::new("schedules/*", SCHEDULES_READ, Effect::Allow));
                r.push(Rule::new("webhooks/*", WEBHOOKS_READ, Effect::Allow));
                r.push(Rule::new("hooks/*", HOOKS_READ, Effect::Allow));
                r
            }),
        ]
    });
    roles
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| r.as_slice())
}

/// The outcome of evaluating rules for one permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// No rule allows it.
    NotAllowed,
    /// A rule denies it (whatever else allows it).
    Denied,
}

/// Deny wins; otherwise allowed only if some rule allows.
pub fn evaluate<'a>(
    rules: impl IntoIterator<Item = &'a Rule>,
    action: &str,
    resource: &str,
) -> Decision {
    let mut allowed = false;
    for r in rules {
        if r.matches(action, resource) {
            match r.effect {
                Effect::Deny => return Decision::Denied,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allowed
    } else {
        Decision::NotAllowed
    }
}

/// Whether `rules` allow `action` on every queue there could be, so a request need not look up
/// which queue a task is in. Conservative: any deny rule that could touch a queue says no.
pub fn allows_on_every_queue<'a>(rules: impl IntoIterator<Item = &'a Rule>, action: &str) -> bool {
    let mut allowed = false;
    for r in rules {
        if !glob_match(&r.action, action) {
            continue;
        }
        let covers_all = r.resource == "*" || r.resource == "queues/*";
        let may_touch_a_queue = r.resource.starts_with('*') || r.resource.starts_with("queues/");
        match r.effect {
            Effect::Deny if may_touch_a_queue => return false,
            Effect::Allow if covers_all => allowed = true,
            _ => {}
        }
    }
    allowed
}

/// The longest tenant, role or schedule name.
pub const MAX_NAME_LEN: usize = 64;

/// Tenant, role and key names: 1 to [`MAX_NAME_LEN`] of `[A-Za-z0-9._-]`.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    crate::limits::validate_identifier(what, name, MAX_NAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        for (p, t) in [
            ("*", ""),
            ("*", "queues/a"),
            ("queues/*", "queues/a"),
            ("queues/em*-eu", "queues/emails-eu"),
            ("tasks:*", "tasks:claim"),
            ("a*b*c", "aXXbYYc"),
            ("exact", "exact"),
        ] {
            assert!(glob_match(p, t), "{p} ~ {t}");
        }
        for (p, t) in [
            ("queues/*", "keys/a"),
            ("queues/a", "queues/ab"),
            ("a*b", "acb-"),
            ("tasks:read", "tasks:readx"),
            ("", "x"),
        ] {
            assert!(!glob_match(p, t), "{p} !~ {t}");
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        let rules = [
            Rule::new("queues/*", "tasks:*", Effect::Allow),
            Rule::new("queues/billing", "tasks:claim", Effect::Deny),
        ];
        assert_eq!(
            evaluate(&rules, "tasks:claim", "queues/emails"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&rules, "tasks:claim", "queues/billing"),
            Decision::Denied
        );
        assert_eq!(
            evaluate(&rules, "tasks:read", "queues/billing"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(&rules, "keys:read", "keys/x"),
            Decision::NotAllowed
        );
        // The order of rules does not matter.
        let reversed: Vec<Rule> = rules.iter().rev().cloned().collect();
        assert_eq!(
            evaluate(&reversed, "tasks:claim", "queues/billing"),
            Decision::Denied
        );
    }

    #[test]
    fn builtin_roles_grant_what_they_say() {
        use actions::*;
        let can = |role: &str, action: &str| {
            evaluate(builtin_rules(role).unwrap(), action, "queues/q") == Decision::Allowed
        };
        assert!(can("producer", TASKS_ENQUEUE) && !can("producer", TASKS_CLAIM));
        assert!(can("worker", TASKS_CLAIM) && can("worker", TASKS_FAIL));
        assert!(!can("worker", TASKS_ENQUEUE) && !can("worker", QUEUES_PURGE));
        assert!(can("reader", TASKS_READ) && !can("reader", TASKS_CANCEL));
        assert!(can("tenant-admin", QUEUES_PURGE));
        let ta = builtin_rules("tenant-admin").unwrap();
        assert_eq!(evaluate(ta, KEYS_CREATE, "keys/x"), Decision::Allowed);
        assert_eq!(
            evaluate(ta, TENANTS_WRITE, "tenants/x"),
            Decision::NotAllowed
        );
        assert_eq!(
            evaluate(ta, WORKERS_SIGNAL, "workers/w1"),
            Decision::Allowed
        );
        let reader = builtin_rules("reader").unwrap();
        assert_eq!(
            evaluate(reader, WORKERS_READ, "workers/*"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(reader, WORKERS_SIGNAL, "workers/w1"),
            Decision::NotAllowed
        );
        assert_eq!(
            evaluate(reader, SCHEDULES_READ, "schedules/nightly"),
            Decision::Allowed
        );
        assert_eq!(
            evaluate(reader, SCHEDULES_WRITE, "schedules/nightly"),
            Decision::NotAllowed
        );
        assert_eq!(
            evaluate(ta, SCHEDULES_WRITE, "schedules/nightly"),
            Decision::Allowed
        );
        assert!(builtin_rules("nope").is_none());
        for r in BUILTIN_ROLES {
            for rule in builtin_rules(r).unwrap() {
                rule.validate().unwrap();
            }
        }
    }

    #[test]
    fn every_queue_shortcut_is_conservative() {
        let worker = builtin_rules("worker").unwrap();
        assert!(allows_on_every_queue(worker, "tasks:complete"));
        assert!(!allows_on_every_queue(worker, "tasks:enqueue"));
        let some = [Rule::new("queues/a-*", "tasks:*", Effect::Allow)];
        assert!(!allows_on_every_queue(&some, "tasks:complete"));
        let denied = [
            Rule::new("*", "*", Effect::Allow),
            Rule::new("queues/secret", "tasks:read", Effect::Deny),
        ];
        assert!(!allows_on_every_queue(&denied, "tasks:read"));
        assert!(allows_on_every_queue(&denied, "tasks:claim"));
    }

    #[test]
    fn rules_are_validated() {
        assert!(Rule::new("queues/*", "tasks:claim", Effect::Allow)
            .validate()
            .is_ok());
        assert!(Rule::new("*", "*", Effect::Deny).validate().is_ok());
        let e = Rule::new("queues/*", "tasks:eat", Effect::Allow)
            .validate()
            .unwrap_err();
        assert!(e.contains("tasks:eat"), "{e}");
        let e = Rule::new("buckets/x", "*", Effect::Allow)
            .validate()
            .unwrap_err();
        assert!(e.contains("buckets/x"), "{e}");
    }
}
