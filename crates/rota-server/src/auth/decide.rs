//! Authorization: whether a principal's roles allow an action on a resource, as the roles are
//! at that moment (nothing caches a decision), within its key's queues and its access token's
//! scope.

use super::*;

impl Auth {
    /// Deny wins across all the principal's roles; a role that no longer exists grants nothing.
    pub(super) fn decide(&self, p: &Principal, action: &str, resource: &str) -> Decision {
        if p.scope
            .as_ref()
            .is_some_and(|s| !s.allows(action, resource))
        {
            return Decision::NotAllowed;
        }
        if let Some(queue) = resource.strip_prefix("queues/") {
            if !p.queues.is_empty() && !p.queues.iter().any(|pat| glob_match(pat, queue)) {
                return Decision::NotAllowed;
            }
        }
        let st = self.read();
        let custom = st.roles.get(&p.tenant);
        let mut allowed = false;
        for role in &p.roles {
            let rules: &[Rule] = match builtin_rules(role) {
                Some(r) => r,
                None => match custom.and_then(|m| m.get(role)) {
                    Some(r) => &r.rules,
                    None => continue,
                },
            };
            match evaluate(rules, action, resource) {
                Decision::Denied => return Decision::Denied,
                Decision::Allowed => allowed = true,
                Decision::NotAllowed => {}
            }
        }
        if allowed {
            Decision::Allowed
        } else {
            Decision::NotAllowed
        }
    }

    /// Whether some rule of the principal's roles allows `action` on some queue.
    pub(super) fn may_on_some_queue(&self, p: &Principal, action: &str) -> bool {
        if p.scope.as_ref().is_some_and(|s| !s.allows_action(action)) {
            return false;
        }
        let st = self.read();
        let custom = st.roles.get(&p.tenant);
        p.roles.iter().any(|role| {
            let rules = builtin_rules(role)
                .or_else(|| custom.and_then(|m| m.get(role)).map(|r| r.rules.as_slice()))
                .unwrap_or(&[]);
            rules.iter().any(|r| {
                r.effect == rota_core::auth::Effect::Allow
                    && glob_match(&r.action, action)
                    && (glob_match(&r.resource, "queues/x") || r.resource.starts_with("queues/"))
            })
        })
    }

    pub(super) fn on_every_queue(&self, p: &Principal, action: &str) -> bool {
        let scoped = |s: &rota_core::auth::Scope| !s.queues.is_empty() || !s.allows_action(action);
        if !p.queues.is_empty() || p.scope.as_ref().is_some_and(scoped) {
            return false;
        }
        let st = self.read();
        let custom = st.roles.get(&p.tenant);
        let rules = p.roles.iter().flat_map(|role| {
            builtin_rules(role)
                .or_else(|| custom.and_then(|m| m.get(role)).map(|r| r.rules.as_slice()))
                .unwrap_or(&[])
        });
        allows_on_every_queue(rules, action)
    }
}
