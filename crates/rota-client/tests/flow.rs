//! Flow control through the client against a real server: a task's group, the queue's limits
//! set and lifted, a group's own settings, the groups listed page by page, and the queue's
//! flow stats.

mod common;

use common::server;
use rota_client::{ClaimOptions, GroupSettings, NewTask, QueueSettingsPatch, Rate};

#[tokio::test]
async fn groups_limits_and_flow_stats_through_the_client() {
    let s = server().await;
    let c = &s.client;
    let limits = QueueSettingsPatch {
        concurrency: Some(Some(10)),
        rate: Some(Some("100/1s,burst=100".parse().unwrap())),
        group_concurrency: Some(Some(1)),
        ..Default::default()
    };
    let q = c.update_queue("reports", &limits).await.unwrap();
    assert_eq!(q.settings.concurrency, Some(10));
    assert_eq!(
        q.settings.rate.map(|r| r.to_string()),
        Some("100/1s,burst=100".into())
    );
    assert_eq!(q.settings.group_concurrency, Some(1));

    for g in ["acme", "acme", "acme", "zeta"] {
        c.enqueue("reports", &NewTask::new("report", &1).group(g))
            .await
            .unwrap();
    }
    let acme = c
        .put_group(
            "reports",
            "acme",
            &GroupSettings {
                concurrency: Some(2),
                weight: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((acme.ready, acme.concurrency), (3, Some(2)));

    let claim = ClaimOptions {
        worker: "w".into(),
        max: 10,
        ..Default::default()
    };
    let got = c.claim("reports", &claim).await.unwrap();
    assert_eq!(got.len(), 3, "acme's two, zeta's one");
    assert!(got.iter().all(|t| t.group.is_some()));

    let page = c.groups("reports", None, Some(1)).await.unwrap();
    assert_eq!(page.groups[0].group, "acme");
    assert_eq!(page.next.as_deref(), Some("acme"));
    let rest = c
        .groups("reports", page.next.as_deref(), None)
        .await
        .unwrap();
    assert_eq!(rest.groups.len(), 1);
    assert_eq!((rest.groups[0].group.as_str(), rest.next), ("zeta", None));

    let stats = c.queue_stats("reports").await.unwrap();
    assert_eq!(stats.queue.counts.running, 3);
    assert_eq!(stats.flow.running, 3);
    assert_eq!(stats.flow.held.group_concurrency, 1, "acme's third");
    assert_eq!(stats.flow.busiest_groups[0].group, "acme");

    // Lifting the limits: `Some(None)` is sent as null.
    let lifted = QueueSettingsPatch {
        concurrency: Some(None),
        rate: Some(None::<Rate>),
        ..Default::default()
    };
    let q = c.update_queue("reports", &lifted).await.unwrap();
    assert_eq!((q.settings.concurrency, q.settings.rate), (None, None));
    assert_eq!(q.settings.group_concurrency, Some(1), "absent fields stay");
}
