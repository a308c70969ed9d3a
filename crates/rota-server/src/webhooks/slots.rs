//! Attempts in flight, counted per slot (a webhook, or one tenant's task results to one
//! origin), per tenant and in total, against `webhooks.concurrency_per_endpoint`,
//! `webhooks.max_in_flight_per_tenant` and `webhooks.max_in_flight`. Each attempt holds a
//! socket, so these bound the descriptors deliveries can take however many receivers hang,
//! and the per-tenant share keeps one tenant from taking them all.

use super::WebhooksConfig;
use rota_store::DueSkip;
use std::collections::HashMap;

/// What one attempt counts against besides its tenant and the total.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Slot {
    Webhook {
        tenant: String,
        id: String,
    },
    /// A task result: its tenant and its URL's origin followed by `/` (task results' URLs
    /// are stored as parsed, so every URL of the origin starts with it).
    Callback {
        tenant: String,
        prefix: String,
    },
}

impl Slot {
    pub fn of(tenant: &str, webhook_id: &str, url: Option<&str>) -> Slot {
        match url {
            None => Slot::Webhook {
                tenant: tenant.to_owned(),
                id: webhook_id.to_owned(),
            },
            Some(u) => Slot::Callback {
                tenant: tenant.to_owned(),
                prefix: match reqwest::Url::parse(u) {
                    Ok(p) => format!("{}/", p.origin().ascii_serialization()),
                    Err(_) => u.to_owned(),
                },
            },
        }
    }

    fn tenant(&self) -> &str {
        match self {
            Slot::Webhook { tenant, .. } | Slot::Callback { tenant, .. } => tenant,
        }
    }
}

/// The counts, behind the deliverer's lock.
#[derive(Debug, Default)]
pub struct InFlight {
    by_slot: HashMap<Slot, usize>,
    by_tenant: HashMap<String, usize>,
    total: usize,
}

impl InFlight {
    pub fn total(&self) -> usize {
        self.total
    }

    /// Whether one more attempt on `slot` stays within every bound.
    pub fn fits(&self, slot: &Slot, c: &WebhooksConfig) -> bool {
        self.total < c.max_in_flight
            && self.by_tenant.get(slot.tenant()).copied().unwrap_or(0) < c.max_in_flight_per_tenant
            && self.by_slot.get(slot).copied().unwrap_or(0) < c.concurrency_per_endpoint
    }

    pub fn start(&mut self, slot: Slot) {
        self.total += 1;
        *self.by_tenant.entry(slot.tenant().to_owned()).or_default() += 1;
        *self.by_slot.entry(slot).or_default() += 1;
    }

    pub fn finish(&mut self, slot: &Slot) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.by_tenant.get_mut(slot.tenant()) {
            *n -= 1;
            if *n == 0 {
                self.by_tenant.remove(slot.tenant());
            }
        }
        if let Some(n) = self.by_slot.get_mut(slot) {
            *n -= 1;
            if *n == 0 {
                self.by_slot.remove(slot);
            }
        }
    }

    /// What the store should leave out of the due deliveries: the tenants at their share and
    /// the full slots (each holds at least one attempt, so these lists stay short).
    pub fn skip(&self, c: &WebhooksConfig) -> DueSkip {
        let mut skip = DueSkip {
            tenants: self
                .by_tenant
                .iter()
                .filter(|(_, n)| **n >= c.max_in_flight_per_tenant)
                .map(|(t, _)| t.clone())
                .collect(),
            ..DueSkip::default()
        };
        for (slot, n) in &self.by_slot {
            if *n < c.concurrency_per_endpoint || skip.tenants.iter().any(|t| t == slot.tenant()) {
                continue;
            }
            match slot {
                Slot::Webhook { tenant, id } => skip.webhooks.push((tenant.clone(), id.clone())),
                Slot::Callback { tenant, prefix } => {
                    skip.callbacks.push((tenant.clone(), prefix.clone()))
                }
            }
        }
        skip
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_per_slot_tenant_and_total_and_what_is_skipped() {
        let c = WebhooksConfig {
            concurrency_per_endpoint: 2,
            max_in_flight_per_tenant: 3,
            max_in_flight: 4,
            ..WebhooksConfig::default()
        };
        let mut f = InFlight::default();
        let a1 = Slot::of("a", "wh_1", None);
        let a2 = Slot::of("a", "callbacks", Some("https://Slow.example.com:443/x?y"));
        assert_eq!(
            a2,
            Slot::Callback {
                tenant: "a".into(),
                prefix: "https://slow.example.com/".into()
            }
        );
        let b1 = Slot::of("b", "wh_1", None);
        f.start(a1.clone());
        f.start(a1.clone());
        assert!(!f.fits(&a1, &c), "the webhook is full");
        assert!(f.fits(&a2, &c));
        let skip = f.skip(&c);
        assert_eq!(skip.webhooks, [("a".to_owned(), "wh_1".to_owned())]);
        assert!(skip.tenants.is_empty() && skip.callbacks.is_empty());
        f.start(a2.clone());
        assert!(!f.fits(&a2, &c), "tenant a is at its share");
        assert_eq!(f.skip(&c).tenants, ["a"]);
        assert!(f.skip(&c).webhooks.is_empty(), "the tenant covers them");
        assert!(f.fits(&b1, &c), "another tenant's webhook of the same id");
        f.start(b1.clone());
        assert_eq!(f.total(), 4);
        assert!(
            !f.fits(&Slot::of("c", "wh_9", None), &c),
            "the total is full"
        );
        f.finish(&a1);
        assert!(f.fits(&a2, &c));
        assert!(f.skip(&c).tenants.is_empty());
        for s in [&a1, &a2, &b1] {
            f.finish(s);
        }
        assert_eq!(f.total(), 0);
        assert!(f.by_slot.is_empty() && f.by_tenant.is_empty());
    }
}
