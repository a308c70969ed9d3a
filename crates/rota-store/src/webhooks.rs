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

/// A delivery due to be sent: its id and its webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: i64,
    pub tenant: String,
    pub webhook_id: String,
    /// A task result's own target; `None`: the webhook's URL.
    pub url: Option<String>,
}
