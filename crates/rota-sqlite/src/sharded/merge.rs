//! Answers put together from every shard's.

use rota_core::StateCounts;
use rota_store::{EventPage, QueueOverview, StoreResult};

/// One page of the tenant's events from each shard's page, all read after the same cursor and
/// below the same horizon: oldest first, at most `limit`. A shard that filled its page only
/// vouches for the cursors up to its last event, so the merged page stops there.
pub(super) fn events(pages: Vec<EventPage>, limit: usize) -> StoreResult<EventPage> {
    let mut next = pages.iter().map(|p| p.next_cursor).min().unwrap_or(0);
    let mut all: Vec<_> = pages.into_iter().flat_map(|p| p.events).collect();
    all.sort_by_key(|e| e.cursor);
    all.retain(|e| e.cursor <= next);
    if all.len() >= limit {
        all.truncate(limit);
        if let Some(last) = all.last() {
            next = last.cursor;
        }
    }
    Ok(EventPage {
        events: all,
        next_cursor: next,
    })
}

/// The deepest `max` queues of all shards' deepest, the rest summed.
pub(super) fn overviews(parts: Vec<QueueOverview>, max: usize) -> QueueOverview {
    let mut out = QueueOverview::default();
    let mut top = Vec::new();
    for p in parts {
        top.extend(p.top);
        out.rest.add(&p.rest);
        out.rest_queues += p.rest_queues;
    }
    let live = |c: &StateCounts| c.scheduled + c.ready + c.running;
    top.sort_by_key(|(_, q)| std::cmp::Reverse(live(&q.counts)));
    for (_, q) in top.drain(max.min(top.len())..) {
        out.rest.add(&q.counts);
        out.rest_queues += 1;
    }
    top.sort_by(|a, b| (&a.0, &a.1.name).cmp(&(&b.0, &b.1.name)));
    out.top = top;
    out
}

/// Takes from each list in turn, so no shard's items crowd out another's, up to `limit`.
pub(super) fn interleave<T>(lists: Vec<Vec<T>>, limit: usize) -> Vec<T> {
    let mut iters: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    while out.len() < limit {
        let before = out.len();
        for it in &mut iters {
            if out.len() == limit {
                break;
            }
            out.extend(it.next());
        }
        if out.len() == before {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rota_core::events::{Event, EventType};
    use rota_core::{TaskId, Timestamp};

    fn ev(cursor: i64) -> Event {
        Event {
            cursor,
            at: Timestamp(0),
            queue: "q".into(),
            kind: "k".into(),
            task_id: TaskId(1),
            attempt: 0,
            event_type: EventType::Enqueued,
            state: None,
            worker: None,
            error: None,
            due: None,
            subject: None,
        }
    }

    fn page(cursors: &[i64], next: i64) -> EventPage {
        EventPage {
            events: cursors.iter().map(|c| ev(*c)).collect(),
            next_cursor: next,
        }
    }

    fn cursors(p: &EventPage) -> Vec<i64> {
        p.events.iter().map(|e| e.cursor).collect()
    }

    #[test]
    fn a_full_shard_page_bounds_the_merged_page() {
        // Shard 0 filled its page at 5; shard 1's 6 and 8 must wait for the next read, or
        // shard 0's 7 would be skipped.
        let p = events(vec![page(&[1, 3, 5], 5), page(&[2, 6, 8], 100)], 3).unwrap();
        assert_eq!((cursors(&p), p.next_cursor), (vec![1, 2, 3], 3));
        let p = events(vec![page(&[1, 3, 5], 5), page(&[2, 6, 8], 100)], 10).unwrap();
        assert_eq!((cursors(&p), p.next_cursor), (vec![1, 2, 3, 5], 5));
        let p = events(vec![page(&[], 50), page(&[9], 50)], 10).unwrap();
        assert_eq!((cursors(&p), p.next_cursor), (vec![9], 50));
    }

    #[test]
    fn interleaving_takes_turns() {
        let v = interleave(vec![vec![1, 2, 3], vec![10], vec![20, 21]], 5);
        assert_eq!(v, vec![1, 10, 20, 2, 21]);
        assert_eq!(interleave(vec![vec![1], vec![]], 5), vec![1]);
    }
}
