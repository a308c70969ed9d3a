//! Webhooks and their deliveries as the store keeps them. An engine turns each logged event a
//! webhook wants into a delivery in the transaction that logs the event, so an acknowledged
//! change's deliveries survive a crash as the change does.

use rota_core::webhooks::DeliveryState;

/// Which deliveries of one webhook to list, newest first.
#[derive(Debug, Clone)]
pub struct DeliveryFilter {
    pub webhook_id: String,
    pub state: Option<DeliveryState>,
    pub limit: usize,
    /// Only deliveries with smaller ids (the previous page's last).
    pub before: Option<i64>,
}

/// Due deliveries the deliverer cannot start now (their bound of attempts in flight is
/// full), left out of [`crate::Store::due_deliveries`] so that a page of them never hides
/// another tenant's work behind them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueSkip {
    /// Tenants at their share of attempts in flight: all their deliveries.
    pub tenants: Vec<String>,
    /// Webhooks, as (tenant, id): their deliveries to the webhook's URL (`url` is `None`).
    pub webhooks: Vec<(String, String)>,
    /// Task results, as (tenant, prefix): the tenant's whose `url` starts with the prefix (an
    /// origin and `/`).
    pub callbacks: Vec<(String, String)>,
}

impl DueSkip {
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty() && self.webhooks.is_empty() && self.callbacks.is_empty()
    }
}

/// A delivery due to be sent: its id and its webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: i64,
    pub tenant: String,
    pub webhook_id: String,
    /// A task result's own target; `None`: the webhook's URL.
    pub url: Option<String>,
}
