//! Limits across servers: each server holds a share of every per-key and per-tenant limit, by
//! the demand each server saw in the last second (exchanged through the store by the
//! membership service).

use super::*;

impl Auth {
    /// Sets how many servers share the store; limits are divided among them.
    pub fn set_servers(&self, n: usize) {
        self.servers.store(n.max(1), Ordering::Relaxed);
    }

    /// This server's share of `client`'s limits among the live servers, by demand (see
    /// [`limits::share_of`]); the whole limit on a single server.
    pub(super) fn share(&self, e: Effective, client: &ClientState) -> Effective {
        let n = self.servers.load(Ordering::Relaxed).max(1) as u32;
        let mine = u64::from(client.last_demand.load(Ordering::Relaxed));
        let others = u64::from(client.others_demand.load(Ordering::Relaxed));
        let part = |v: u32| limits::share_of(v, n, mine, others);
        Effective {
            requests_per_minute: part(e.requests_per_minute),
            max_in_flight: part(e.max_in_flight),
        }
    }

    /// Every limited client's counters with the name other servers know it by.
    fn demand_clients(&self) -> Vec<(String, Arc<ClientState>)> {
        let st = self.read();
        let mut all: Vec<(String, Arc<ClientState>)> = Vec::new();
        all.extend(
            st.keys
                .iter()
                .map(|(id, k)| (format!("k/{id}"), k.client.clone())),
        );
        all.extend(
            st.tenants
                .iter()
                .map(|(name, t)| (format!("t/{name}"), t.client.clone())),
        );
        drop(st);
        let jwt = self.jwt_clients.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(
            jwt.iter()
                .map(|((tenant, sub), c)| (format!("j/{tenant}/{sub}"), c.clone())),
        );
        all
    }

    /// Each client's requests since the last call (kept as the last second's demand), for the
    /// clients that had any.
    pub fn take_demand(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (name, c) in self.demand_clients() {
            let d = c.demand.swap(0, Ordering::Relaxed);
            c.last_demand.store(d, Ordering::Relaxed);
            if d > 0 {
                out.push((name, u64::from(d)));
            }
        }
        out
    }

    /// The other servers' demand by client, from [`rota_store::Store::exchange_demand`].
    pub fn set_others_demand(&self, others: &HashMap<String, u64>) {
        for (name, c) in self.demand_clients() {
            let d = others.get(&name).copied().unwrap_or(0);
            c.others_demand
                .store(u32::try_from(d).unwrap_or(u32::MAX), Ordering::Relaxed);
        }
    }
}
