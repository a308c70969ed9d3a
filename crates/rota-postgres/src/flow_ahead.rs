//! What a claim of a grouped queue reads ahead: the next groups round the ring, each with its
//! own settings, rate state, running count and first ready tasks, in one round trip per
//! [`GROUPS_AHEAD`] groups instead of several per task.
//!
//! The claim holds the queue's row, so no other claim of this queue runs meanwhile; what it read
//! ahead can only have gone stale by a task cancelled or deleted since (the lease's UPDATE
//! leases only tasks still ready) or by tasks enqueued since (the next claim sees them): both
//! leave every limit kept.

use crate::db;
use deadpool_postgres::GenericClient;
use rota_core::flow::GroupSettings;
use rota_store::StoreResult;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// Groups one read ahead brings.
pub const GROUPS_AHEAD: i64 = 128;
/// Ready tasks read ahead per group (more are read when a group runs out of them).
const TASKS_AHEAD: i64 = 4;
/// Ready tasks read when a group runs out of those read ahead.
const TASKS_MORE: i64 = 64;

/// One group read ahead.
#[derive(Debug)]
pub struct Head {
    pub settings: Option<GroupSettings>,
    pub tat: i64,
    pub running: u64,
    /// Its ready tasks not taken yet, in claim order.
    ids: VecDeque<i64>,
    /// Whether it may have ready tasks beyond `ids`.
    more: bool,
}

/// The groups read ahead, and the stretches of the ring those reads covered: `(after, to)`
/// means every group with a ready task whose name is above `after` and at most `to` (or above
/// `after` at all, when `to` is `None`) was read.
#[derive(Debug, Default)]
pub struct Ahead {
    heads: BTreeMap<String, Head>,
    covered: Vec<(String, Option<String>)>,
}

/// The queue, the kinds asked and the tasks taken so far: what every read filters by.
pub struct Scope<'a> {
    pub qid: i64,
    pub kinds: &'a [String],
    pub picked: &'a [i64],
}

impl Ahead {
    pub fn head(&self, group: &str) -> Option<&Head> {
        self.heads.get(group)
    }

    /// Whether a group read ahead has a ready task not taken; `None` if it was not read ahead.
    pub async fn has_ready<C: GenericClient>(
        &mut self,
        tx: &C,
        scope: &Scope<'_>,
        group: &str,
    ) -> StoreResult<Option<bool>> {
        let Some(h) = self.heads.get_mut(group) else {
            return Ok(None);
        };
        if h.ids.is_empty() && h.more {
            refill(tx, scope, group, h).await?;
        }
        Ok(Some(!h.ids.is_empty()))
    }

    /// Takes up to `n` of a group's ready tasks read ahead (reading more if it ran out);
    /// `None` if the group was not read ahead.
    pub async fn take<C: GenericClient>(
        &mut self,
        tx: &C,
        scope: &Scope<'_>,
        group: &str,
        n: usize,
    ) -> StoreResult<Option<Vec<i64>>> {
        let Some(h) = self.heads.get_mut(group) else {
            return Ok(None);
        };
        if h.ids.len() < n && h.more {
            refill(tx, scope, group, h).await?;
        }
        let n = n.min(h.ids.len());
        Ok(Some(h.ids.drain(..n).collect()))
    }

    /// The first group by name above `after` with a ready task not taken, reading ahead as
    /// far as needed.
    pub async fn group_after<C: GenericClient>(
        &mut self,
        tx: &C,
        scope: &Scope<'_>,
        after: &str,
    ) -> StoreResult<Option<String>> {
        let mut after = after.to_owned();
        loop {
            let Some(to) = self.covering(&after) else {
                self.read_ahead(tx, scope, &after).await?;
                continue;
            };
            let upper = match &to {
                Some(t) => Bound::Included(t.clone()),
                None => Bound::Unbounded,
            };
            let names: Vec<String> = self
                .heads
                .range::<String, _>((Bound::Excluded(after.clone()), upper))
                .map(|(name, _)| name.clone())
                .collect();
            for name in names {
                if self.has_ready(tx, scope, &name).await? == Some(true) {
                    return Ok(Some(name));
                }
            }
            match to {
                Some(t) => after = t,
                None => return Ok(None),
            }
        }
    }

    /// The end of the read stretch that `after` falls in (`Some(None)`: to the end of the
    /// ring), if one does.
    fn covering(&self, after: &str) -> Option<Option<String>> {
        self.covered
            .iter()
            .find(|(from, to)| from.as_str() <= after && to.as_deref().is_none_or(|t| after < t))
            .map(|(_, to)| to.clone())
    }

    /// Reads the next [`GROUPS_AHEAD`] groups with ready tasks above `after`: each one's own
    /// settings, rate state, running count and first ready tasks of the kinds asked.
    async fn read_ahead<C: GenericClient>(
        &mut self,
        tx: &C,
        scope: &Scope<'_>,
        after: &str,
    ) -> StoreResult<()> {
        let kinds = if scope.kinds.is_empty() {
            ""
        } else {
            "AND t.kind = ANY($6)"
        };
        // A loose index scan over rota_tasks_ready_group: one probe per group name.
        let sql = format!(
            "WITH RECURSIVE g(grp) AS ( \
               (SELECT grp FROM rota_tasks WHERE queue_id = $1 AND state = 1 AND grp > $2 \
                ORDER BY grp LIMIT 1) \
               UNION ALL \
               SELECT (SELECT t.grp FROM rota_tasks t WHERE t.queue_id = $1 AND t.state = 1 \
                       AND t.grp > g.grp ORDER BY t.grp LIMIT 1) \
               FROM g WHERE g.grp IS NOT NULL), \
             n AS (SELECT grp FROM g WHERE grp IS NOT NULL LIMIT $3) \
             SELECT n.grp, s.settings, coalesce(s.rate_tat_us, 0), \
               (SELECT count(*) FROM rota_tasks r WHERE r.queue_id = $1 AND r.state = 2 \
                AND r.grp = n.grp), \
               ARRAY(SELECT t.id FROM rota_tasks t WHERE t.queue_id = $1 AND t.state = 1 \
                     AND t.grp = n.grp AND t.id <> ALL($5) {kinds} \
                     ORDER BY t.priority DESC, t.id LIMIT $4) \
             FROM n LEFT JOIN rota_task_groups s ON s.queue_id = $1 AND s.name = n.grp \
             ORDER BY n.grp"
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
        let rows = if scope.kinds.is_empty() {
            tx.query(
                &stmt,
                &[
                    &scope.qid,
                    &after,
                    &GROUPS_AHEAD,
                    &TASKS_AHEAD,
                    &scope.picked,
                ],
            )
            .await
        } else {
            tx.query(
                &stmt,
                &[
                    &scope.qid,
                    &after,
                    &GROUPS_AHEAD,
                    &TASKS_AHEAD,
                    &scope.picked,
                    &scope.kinds,
                ],
            )
            .await
        }
        .map_err(db)?;
        let mut last = None;
        for row in &rows {
            let name: String = row.get(0);
            let settings: Option<String> = row.get(1);
            let ids: Vec<i64> = row.get(4);
            last = Some(name.clone());
            // A group read before keeps what this claim took from it.
            self.heads.entry(name).or_insert_with(|| Head {
                settings: settings.and_then(|s| serde_json::from_str(&s).ok()),
                tat: row.get(2),
                running: row.get::<_, i64>(3).max(0) as u64,
                more: ids.len() as i64 == TASKS_AHEAD,
                ids: ids.into(),
            });
        }
        let to = if (rows.len() as i64) < GROUPS_AHEAD {
            None
        } else {
            last
        };
        self.covered.push((after.to_owned(), to));
        Ok(())
    }
}

/// Reads more of a group's ready tasks not taken.
async fn refill<C: GenericClient>(
    tx: &C,
    scope: &Scope<'_>,
    group: &str,
    h: &mut Head,
) -> StoreResult<()> {
    let kinds = if scope.kinds.is_empty() {
        ""
    } else {
        "AND kind = ANY($5)"
    };
    let sql = format!(
        "SELECT id FROM rota_tasks WHERE queue_id = $1 AND state = 1 AND grp = $2 \
         AND id <> ALL($3) {kinds} ORDER BY priority DESC, id LIMIT $4"
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    // What is still in `ids` was read and not taken: it is among the first again.
    let rows = if scope.kinds.is_empty() {
        tx.query(&stmt, &[&scope.qid, &group, &scope.picked, &TASKS_MORE])
            .await
    } else {
        tx.query(
            &stmt,
            &[&scope.qid, &group, &scope.picked, &TASKS_MORE, &scope.kinds],
        )
        .await
    }
    .map_err(db)?;
    h.more = rows.len() as i64 == TASKS_MORE;
    h.ids = rows.iter().map(|r| r.get(0)).collect();
    Ok(())
}
