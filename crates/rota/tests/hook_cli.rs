//! `rota hook`: a hook made from the command line takes a provider's request at the URL it
//! printed, shows it in `requests`, refuses requests while disabled, rotates its secret with a
//! grace, and is gone once deleted; bad input is refused with a clear error.

mod common;

use common::cli::{fails, json, ok, rota_at};

const SECRET: &str = "gitlab-token-0123456789";
const NEW_SECRET: &str = "gitlab-token-rotated-42";

/// A GitLab push, as GitLab sends it (its token header is the secret itself).
async fn push(url: &str, token: &str, delivery: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-gitlab-token", token)
        .header("x-gitlab-event", "Push Hook")
        .header("idempotency-key", delivery)
        .body(r#"{"object_kind":"push","ref":"refs/heads/main"}"#)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hook_made_from_the_cli_takes_requests_until_disabled_rotated_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    let shown = ok(rota_at(&s).args([
        "hook",
        "create",
        "gitlab-push",
        "--queue",
        "mirror",
        "--kind",
        "push",
        "--verify",
        "gitlab",
        "--secret",
        SECRET,
    ]));
    let url = shown
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{}/hooks/hk_", s.url)))
        .unwrap_or_else(|| panic!("no hook URL in {shown}"))
        .to_owned();
    let id = url.rsplit('/').next().unwrap().to_owned();
    assert!(
        shown.contains(&format!("created hook {id} (gitlab-push)")),
        "{shown}"
    );
    assert!(shown.contains(SECRET), "the secret is shown once: {shown}");
    assert!(shown.contains("Secret token"), "{shown}");

    let (status, got) = push(&url, SECRET, "delivery-1").await;
    assert_eq!(status, 202, "{got}");
    let task = got["task_id"].as_str().unwrap().to_owned();
    let seen = ok(rota_at(&s).args(["hook", "requests", &id]));
    let row = seen
        .lines()
        .find(|l| l.contains("delivery-1"))
        .unwrap_or_else(|| panic!("no request for delivery-1: {seen}"));
    assert!(
        seen.starts_with("AT") && row.contains("received") && row.contains("202"),
        "{seen}"
    );
    assert!(row.contains(&task), "{row}");
    let task_json = json(&ok(
        rota_at(&s).args(["task", "get", &task, "--output", "json"])
    ));
    assert_eq!(task_json["queue"], "mirror");
    assert_eq!(task_json["kind"], "push");

    let listed = ok(rota_at(&s).args(["hook", "list"]));
    assert!(
        listed.contains(&id) && listed.contains("gitlab-push") && listed.contains(&url),
        "{listed}"
    );
    assert!(!listed.contains(SECRET), "the list never shows the secret");
    let shown = json(&ok(
        rota_at(&s).args(["hook", "show", &id, "--output", "json"])
    ));
    assert_eq!(shown["verify"], "gitlab");
    assert_eq!(shown["enabled"], true);
    assert!(shown.get("secret").is_none(), "{shown}");

    // Disabled: refused (403) and shown as rejected, with the reason.
    let off = ok(rota_at(&s).args(["hook", "update", &id, "--disable"]));
    assert!(off.contains("enabled     no"), "{off}");
    let (status, refused) = push(&url, SECRET, "delivery-2").await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "hook_disabled");
    let seen = json(&ok(
        rota_at(&s).args(["hook", "requests", &id, "--output", "json"])
    ));
    assert_eq!(seen[0]["outcome"], "rejected", "{seen}");
    assert_eq!(seen[0]["status"], 403);
    assert!(
        seen[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("hook_disabled"),
        "{seen}"
    );
    assert_eq!(seen[1]["delivery"], "delivery-1");

    // A rotation with a grace: the old token and the new one both work for now.
    let rotated = ok(rota_at(&s).args([
        "hook", "rotate", &id, "--grace", "1h", "--secret", NEW_SECRET,
    ]));
    assert!(
        rotated.contains(&format!(
            "rotated hook {id}; its old secret is accepted until"
        )) && rotated.contains(NEW_SECRET),
        "{rotated}"
    );
    ok(rota_at(&s).args(["hook", "update", &id, "--enable"]));
    assert_eq!(push(&url, NEW_SECRET, "delivery-3").await.0, 202);
    assert_eq!(push(&url, SECRET, "delivery-4").await.0, 202);
    let listed = ok(rota_at(&s).args(["hook", "list"]));
    assert!(
        listed.contains("OLD SECRET UNTIL") && listed.contains("in 59m"),
        "{listed}"
    );
    // With no grace the old one stops at once.
    let again =
        json(&ok(rota_at(&s).args([
            "hook", "rotate", &id, "--grace", "0s", "--output", "json",
        ])));
    assert_eq!(again["previous_secret_until"], serde_json::Value::Null);
    assert_eq!(again["secret"].as_str().unwrap().len(), 64, "a made secret");
    assert_eq!(push(&url, NEW_SECRET, "delivery-5").await.0, 401);

    let deleted = ok(rota_at(&s).args(["hook", "delete", &id]));
    assert_eq!(deleted.trim(), format!("deleted hook {id}"));
    assert_eq!(push(&url, SECRET, "delivery-6").await.0, 404);
    let gone = fails(rota_at(&s).args(["hook", "show", &id]));
    assert!(gone.contains("acting tenant"), "{gone}");
    assert_eq!(ok(rota_at(&s).args(["hook", "list"])).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let s = common::start(dir.path()).await;
    // A provider Rota does not verify: refused before anything is sent, naming the choices.
    let out = rota_at(&s)
        .args([
            "hook", "create", "svix", "--queue", "q", "--kind", "k", "--verify", "svix",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: invalid value 'svix' for '--verify <VERIFY>'")
            && err.contains("[possible values: github, gitlab, hmac-sha256, stripe]"),
        "{err}"
    );
    // The server's rules come back as one line.
    let short = fails(rota_at(&s).args([
        "hook", "create", "gh", "--queue", "q", "--kind", "k", "--verify", "github", "--secret",
        "short",
    ]));
    assert!(short.contains("secret must be 16 to 256"), "{short}");
    let nothing = fails(rota_at(&s).args(["hook", "update", "hk_0000"]));
    assert!(nothing.contains("nothing to change"), "{nothing}");
    let both = rota_at(&s)
        .args(["hook", "update", "hk_0000", "--enable", "--disable"])
        .output()
        .unwrap();
    assert!(!both.status.success());
    assert_eq!(ok(rota_at(&s).args(["hook", "list"])).lines().count(), 1);
}
