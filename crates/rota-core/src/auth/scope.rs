//! OAuth scopes: what a client-credentials access token narrows its key to. A scope is a
//! space-separated list of actions (`tasks:claim`, `tasks:*`) and queue patterns
//! (`queues/emails-*`); a token may do what its key may do, and of that only the actions
//! listed (all, when none is) on the queues listed (all, when none is).

use super::{actions, glob_match};
use serde::{Deserialize, Serialize};

/// Most items one scope may list.
pub const MAX_SCOPE_ITEMS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
}

impl Scope {
    /// The scope `text` lists (RFC 6749 §3.3: space-separated), `None` when it lists nothing.
    pub fn parse(text: &str) -> Result<Option<Scope>, String> {
        let items: Vec<&str> = text.split(' ').filter(|s| !s.is_empty()).collect();
        if items.len() > MAX_SCOPE_ITEMS {
            return Err(format!(
                "scope lists {} items; at most {MAX_SCOPE_ITEMS}",
                items.len()
            ));
        }
        let mut scope = Scope::default();
        for item in items {
            if let Some(pattern) = item.strip_prefix("queues/") {
                let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*');
                if pattern.is_empty() || pattern.len() > 128 || !pattern.chars().all(ok) {
                    return Err(format!(
                        "scope item `{item}` is not a queue pattern (queues/ then 1 to 128 of \
                         A-Z, a-z, 0-9, '.', '_', '-' and '*')"
                    ));
                }
                scope.queues.push(pattern.to_owned());
            } else if actions::ALL.iter().any(|a| glob_match(item, a)) {
                scope.actions.push(item.to_owned());
            } else {
                return Err(format!(
                    "scope item `{item}` is neither an action (such as tasks:claim or tasks:*) \
                     nor a queue pattern (queues/<pattern>)"
                ));
            }
        }
        Ok((scope != Scope::default()).then_some(scope))
    }

    pub fn allows_action(&self, action: &str) -> bool {
        self.actions.is_empty() || self.actions.iter().any(|a| glob_match(a, action))
    }

    /// Whether the scope lets `action` on `resource` through (the key's roles decide after).
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        if !self.allows_action(action) {
            return false;
        }
        match resource.strip_prefix("queues/") {
            Some(queue) if !self.queues.is_empty() => {
                self.queues.iter().any(|p| glob_match(p, queue))
            }
            _ => true,
        }
    }

    /// As a token's `scope` says it: actions, then queue patterns.
    pub fn render(&self) -> String {
        let queues = self.queues.iter().map(|q| format!("queues/{q}"));
        self.actions
            .iter()
            .cloned()
            .chain(queues)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_actions_and_queues() {
        let s = Scope::parse("tasks:claim tasks:complete  queues/emails-*")
            .unwrap()
            .unwrap();
        assert!(s.allows("tasks:claim", "queues/emails-eu"));
        assert!(!s.allows("tasks:enqueue", "queues/emails-eu"));
        assert!(!s.allows("tasks:claim", "queues/reports"));
        // Queue patterns narrow queues only.
        assert!(!s.allows("keys:read", "keys/k1"));
        let any_queue = Scope::parse("tasks:*").unwrap().unwrap();
        assert!(any_queue.allows("tasks:read", "queues/x"));
        assert_eq!(s.render(), "tasks:claim tasks:complete queues/emails-*");
        assert_eq!(Scope::parse(" ").unwrap(), None);
    }

    #[test]
    fn unknown_items_are_refused_by_name() {
        for bad in ["tasks:fly", "admin", "queues/", "queues/a b", "queues/x/y"] {
            let e = Scope::parse(bad).unwrap_err();
            assert!(e.contains('`'), "{bad}: {e}");
        }
        let many = vec!["tasks:read"; 33].join(" ");
        assert!(Scope::parse(&many).unwrap_err().contains("at most"));
    }
}
