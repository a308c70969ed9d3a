//! Bodies for tenants, keys and roles, and deleting a tenant.

use super::*;

pub(super) fn key_record(id: &str, tenant: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        name: Some("ci".into()),
        hash: "ab".repeat(32),
        roles: vec!["worker".into(), "custom".into()],
        queues: vec!["emails-*".into()],
        expires_at: Some(Timestamp(T0 + 60_000)),
        created_at: Timestamp(T0),
        last_used_at: None,
        revoked_at: None,
        limits: ClientLimits {
            requests_per_minute: Some(600),
            max_in_flight: None,
        },
        sessions_valid_from: None,
        // A rotated key keeps its old secret's hash until the grace ends.
        previous_hash: Some(format!("v2:{}", "cd".repeat(32))),
        previous_until: Some(Timestamp(T0 + 30_000)),
        expiry_notice: None,
        rotated_at: Some(Timestamp(T0)),
    }
}

pub(super) fn role_record(tenant: &str, name: &str) -> RoleRecord {
    RoleRecord {
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        rules: vec![
            Rule::new("queues/*", "tasks:*", Effect::Allow),
            Rule::new("queues/secret", "*", Effect::Deny),
        ],
        updated_at: Timestamp(T0),
    }
}

pub async fn auth_data_round_trips_and_survives_reopen<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    // A new store has the `default` tenant, which owns whatever existed before tenants did.
    let fresh = s.load_auth().await.unwrap();
    assert_eq!(
        fresh
            .tenants
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["default"]
    );
    assert!(fresh.keys.is_empty() && fresh.roles.is_empty());
    let acme = TenantRecord {
        name: "acme".into(),
        created_at: Timestamp(T0),
        limits: ClientLimits {
            requests_per_minute: None,
            max_in_flight: Some(7),
        },
        event_retention_ms: Some(3_600_000),
    };
    s.change_auth(AuthChange::PutTenant(acme.clone()))
        .await
        .unwrap();
    let mut key = key_record("k1", "acme");
    s.change_auth(AuthChange::PutKey(Box::new(key.clone())))
        .await
        .unwrap();
    let role = role_record("acme", "custom");
    s.change_auth(AuthChange::PutRole(role.clone()))
        .await
        .unwrap();
    s.change_auth(AuthChange::PutRole(role_record("acme", "gone")))
        .await
        .unwrap();
    s.change_auth(AuthChange::DeleteRole {
        tenant: "acme".into(),
        name: "gone".into(),
    })
    .await
    .unwrap();
    s.change_auth(AuthChange::TouchKeys(vec![(
        "k1".into(),
        Timestamp(T0 + 5),
    )]))
    .await
    .unwrap();
    key.last_used_at = Some(Timestamp(T0 + 5));
    // Replacing a key (revocation) keeps one row.
    key.revoked_at = Some(Timestamp(T0 + 9));
    s.change_auth(AuthChange::PutKey(Box::new(key.clone())))
        .await
        .unwrap();
    // Maintenance mode: set, replaced, and kept.
    assert_eq!(s.load_auth().await.unwrap().maintenance, None);
    let mut maintenance = rota_core::maintenance::Maintenance {
        message: "upgrade".into(),
        refusing: false,
        until: None,
        since: Timestamp(T0),
        by: "admin token".into(),
    };
    s.change_auth(AuthChange::SetMaintenance(Some(maintenance.clone())))
        .await
        .unwrap();
    maintenance.refusing = true;
    maintenance.until = Some(Timestamp(T0 + 60_000));
    s.change_auth(AuthChange::SetMaintenance(Some(maintenance.clone())))
        .await
        .unwrap();
    s.close().await;
    let s = h.open(clock).await;
    assert_eq!(s.load_auth().await.unwrap().maintenance, Some(maintenance));
    s.change_auth(AuthChange::SetMaintenance(None))
        .await
        .unwrap();
    assert_eq!(s.load_auth().await.unwrap().maintenance, None);
    let mut data = s.load_auth().await.unwrap();
    data.tenants.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(data.tenants[0], acme);
    assert_eq!(data.tenants[1].name, "default");
    assert_eq!(data.keys, vec![key]);
    assert_eq!(data.roles, vec![role]);
    s.close().await;
}

/// A key is found by id in the store itself, and ending its sessions only ever moves
/// `sessions_valid_from` forward, kept with the key across reopen.
pub async fn a_key_is_found_by_id_and_its_sessions_end_forward_only<H: Harness>() {
    let (h, clock, s) = setup::<H>().await;
    assert_eq!(s.find_key("k1").await.unwrap(), None);
    let mut key = key_record("k1", "default");
    s.change_auth(AuthChange::PutKey(Box::new(key.clone())))
        .await
        .unwrap();
    assert_eq!(s.find_key("k1").await.unwrap(), Some(key.clone()));
    let end = |at: i64| AuthChange::EndSessions {
        key: "k1".into(),
        at: Timestamp(at),
    };
    s.change_auth(end(T0 + 2_000)).await.unwrap();
    key.sessions_valid_from = Some(Timestamp(T0 + 2_000));
    assert_eq!(s.find_key("k1").await.unwrap(), Some(key.clone()));
    // An earlier end (a server whose clock is behind) does not move it back; a later one
    // moves it on, across a tenth of a second and a year (text order is time order).
    s.change_auth(end(T0 + 1_000)).await.unwrap();
    assert_eq!(s.find_key("k1").await.unwrap(), Some(key.clone()));
    for later in [T0 + 2_100, T0 + 2_100 + 365 * 86_400_000] {
        s.change_auth(end(later)).await.unwrap();
        key.sessions_valid_from = Some(Timestamp(later));
        assert_eq!(s.find_key("k1").await.unwrap(), Some(key.clone()));
    }
    // Ending an unknown key's sessions creates nothing.
    s.change_auth(AuthChange::EndSessions {
        key: "nobody".into(),
        at: Timestamp(T0),
    })
    .await
    .unwrap();
    assert_eq!(s.find_key("nobody").await.unwrap(), None);
    s.close().await;
    let s = h.open(clock).await;
    assert_eq!(s.load_auth().await.unwrap().keys, vec![key.clone()]);
    assert_eq!(s.find_key("k1").await.unwrap(), Some(key));
    s.close().await;
}

pub async fn deleting_a_tenant_removes_everything_it_owns<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    for name in ["acme", "globex"] {
        let t = TenantRecord {
            name: name.into(),
            created_at: Timestamp(T0),
            limits: ClientLimits::default(),
            event_retention_ms: None,
        };
        s.change_auth(AuthChange::PutTenant(t)).await.unwrap();
        s.change_auth(AuthChange::PutKey(Box::new(key_record(
            &format!("{name}-key"),
            name,
        ))))
        .await
        .unwrap();
        s.change_auth(AuthChange::PutRole(role_record(name, "custom")))
            .await
            .unwrap();
    }
    let acme = QueueKey::new("acme", "jobs");
    let globex = QueueKey::new("globex", "jobs");
    let a = enqueue_one(&s, &acme, task("x")).await;
    enqueue_one(&s, &acme, task("x")).await;
    claim_one(&s, &acme).await;
    let g = enqueue_one(&s, &globex, task("y")).await;
    let waiting = NewTask {
        depends_on: vec![a.id],
        ..task("w")
    };
    enqueue_one(&s, &QueueKey::new("acme", "later"), waiting).await;
    let spec = |name: &str, after: Vec<usize>| crate::WorkflowSpecTask {
        name: name.into(),
        queue: "flows".into(),
        task: task(name),
        after,
    };
    s.submit_workflow(
        "acme",
        vec![spec("a", vec![]), spec("b", vec![0])],
        crate::Submission::Workflow,
    )
    .await
    .unwrap();
    s.change_auth(AuthChange::DeleteTenant("acme".into()))
        .await
        .unwrap();
    assert_eq!(
        s.get("acme", a.id).await.unwrap_err(),
        StoreError::TaskNotFound(a.id)
    );
    assert!(s.queues("acme").await.unwrap().is_empty());
    assert!(s.workflows("acme", None, 10).await.unwrap().is_empty());
    assert!(s.claim(&acme, claim_req(5)).await.unwrap().is_empty());
    let data = s.load_auth().await.unwrap();
    assert!(data.tenants.iter().all(|t| t.name != "acme"));
    assert!(data.keys.iter().all(|k| k.tenant != "acme"));
    assert!(data.roles.iter().all(|r| r.tenant != "acme"));
    assert_eq!(data.keys.len(), 1);
    // The other tenant is untouched. A write for the deleted tenant (one authenticated just
    // before the delete, say) cannot bring it back; a new tenant of the same name starts empty.
    assert_eq!(s.get("globex", g.id).await.unwrap().state, TaskState::Ready);
    assert_eq!(s.queue(&globex).await.unwrap().counts.total(), 1);
    assert_eq!(
        s.enqueue(&acme, vec![task("z")]).await.unwrap_err(),
        StoreError::TenantNotFound("acme".into())
    );
    assert_eq!(
        s.update_queue(&acme, QueuePatch::default())
            .await
            .unwrap_err(),
        StoreError::TenantNotFound("acme".into())
    );
    assert!(s.queues("acme").await.unwrap().is_empty());
    create_tenant(&s, "acme").await;
    assert!(s.queues("acme").await.unwrap().is_empty());
    let again = enqueue_one(&s, &acme, task("z")).await;
    assert_eq!(s.queue(&acme).await.unwrap().counts.ready, 1);
    assert_eq!(s.all_queues().await.unwrap().len(), 2);
    assert!(again.id > g.id);
}

/// Deleting a tenant while its writes (and another tenant's) are on their way: every write of
/// the other tenant succeeds, and once the delete is answered nothing of the deleted tenant
/// exists or comes back, whichever order the writes landed in. Many rounds, so writes land
/// before, beside (in one commit) and after the delete.
pub async fn deleting_a_tenant_under_concurrent_writes_leaves_nothing<H: Harness>() {
    let (_h, _c, s) = setup::<H>().await;
    create_tenant(&s, "bystander").await;
    let other = QueueKey::new("bystander", "jobs");
    for round in 0..20 {
        create_tenant(&s, "doomed").await;
        let doomed = QueueKey::new("doomed", format!("q{}", round % 3));
        enqueue_one(&s, &doomed, task("x")).await;
        let mut writes = Vec::new();
        for i in 0..24 {
            let store = s.clone();
            let (q, o) = (doomed.clone(), other.clone());
            writes.push(tokio::spawn(async move {
                if i % 6 == 0 {
                    tokio::task::yield_now().await;
                }
                let mine = store.enqueue(&q, vec![task("x")]).await;
                let theirs = store.enqueue(&o, vec![task("y")]).await;
                (mine, theirs)
            }));
            if i == 12 {
                let s = s.clone();
                writes.push(tokio::spawn(async move {
                    s.change_auth(AuthChange::DeleteTenant("doomed".into()))
                        .await
                        .unwrap();
                    (Ok(vec![]), Ok(vec![]))
                }));
            }
        }
        for w in writes {
            let (mine, theirs) = w.await.unwrap();
            theirs.expect("another tenant's write is never affected");
            match mine {
                Ok(_) | Err(StoreError::TenantNotFound(_)) => {}
                Err(e) => panic!("round {round}: unexpected error {e:?}"),
            }
        }
        assert!(
            s.queues("doomed").await.unwrap().is_empty(),
            "round {round}: the deleted tenant's queues came back"
        );
        assert!(s
            .all_queues()
            .await
            .unwrap()
            .iter()
            .all(|(t, _)| t != "doomed"));
        assert_eq!(
            s.enqueue(&doomed, vec![task("x")]).await.unwrap_err(),
            StoreError::TenantNotFound("doomed".into())
        );
    }
    let total: u64 = s.queue(&other).await.unwrap().counts.total();
    assert_eq!(total, 20 * 24);
    // A new tenant with the old name inherits nothing.
    create_tenant(&s, "doomed").await;
    assert!(s.queues("doomed").await.unwrap().is_empty());
}
