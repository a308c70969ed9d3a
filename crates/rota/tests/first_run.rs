//! `rota serve` and `rota recover-admin` as a new user meets them: a busy port is named before
//! anything is created, the data directory is private, and a lost admin key can be recovered
//! offline.

mod common;

use std::process::{Command, Stdio};

fn rota() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rota"));
    c.env("ROTA_LOG", "warn")
        .env_remove("ROTA_ADMIN_TOKEN")
        .env_remove("ROTA_DATA_DIR")
        .stdin(Stdio::null());
    c
}

#[test]
fn a_busy_port_is_named_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = rota()
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr) && stderr.contains("--listen"),
        "{stderr}"
    );
    assert!(
        !data.exists(),
        "a failed start must not create a store or a key"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // An existing, world-readable directory is narrowed too.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = common::start(&data).await;
    server
        .client
        .enqueue("q", &rota_client::NewTask::new("k", &serde_json::json!({})))
        .await
        .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for name in ["rota.db", "rota.db-wal", "rota.db-shm", "admin-token"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
}

#[tokio::test]
async fn a_lost_admin_key_is_recovered_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = common::start(&data).await;
    // While the server runs, recovery is refused: it needs the data directory to itself.
    let out = rota()
        .args(["recover-admin", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop it"));
    // The only admin key cannot be revoked from the API.
    let whoami = server.client.whoami().await.unwrap();
    let key_id = whoami.principal.trim_start_matches("key ").to_owned();
    let e = server.client.revoke_key(&key_id).await.unwrap_err();
    assert!(e.to_string().contains("last active admin key"), "{e}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    std::fs::remove_file(data.join("admin-token")).unwrap();
    let out = rota()
        .args(["recover-admin", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    assert!(printed.contains(token.trim()));
    drop(server);
    let again = common::start(&data).await;
    let me = again.client.whoami().await.unwrap();
    assert_eq!(me.roles, ["admin"]);
    assert_ne!(me.principal, whoami.principal);
}

/// `recover-admin` reads the configuration as `serve` does (here the data directory comes from
/// the config file) and opens the shard files there without making the ones `storage.shards`
/// asks for beyond them.
#[tokio::test]
async fn recover_admin_reads_the_config_and_makes_no_shard_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = common::start_with(&data, &[("ROTA_SHARDS", "2")]).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(data.join("rota-shard1.db").exists());
    let config = dir.path().join("rota.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[storage]\nshards = 4\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::remove_file(data.join("admin-token")).unwrap();
    let out = rota()
        .args(["recover-admin", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join("admin-token").exists());
    for i in 2..4 {
        let extra = data.join(format!("rota-shard{i}.db"));
        assert!(!extra.exists(), "{} was made", extra.display());
    }
}

/// The CLI with no credential says where it looked and how to pass one; the data dir's token
/// goes only to the server that wrote it, not to another server on this machine.
#[tokio::test]
async fn the_cli_says_where_it_looked_for_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = common::start(&data).await;
    let other = tempfile::tempdir().unwrap();
    let second = common::start(&other.path().join("data")).await;
    let run = |url: &str, data_dir: &std::path::Path| {
        rota()
            .args(["queue", "list"])
            .env("ROTA_URL", url)
            .env("ROTA_DATA_DIR", data_dir)
            .env_remove("ROTA_TOKEN")
            .output()
            .unwrap()
    };
    let out = run(&server.url, &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The first server's data dir, pointed at the second server: no token is sent.
    let out = run(&second.url, &data);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--token"), "{stderr}");
    assert!(stderr.contains("different port"), "{stderr}");
    let missing = dir.path().join("nowhere");
    let out = run(&server.url, &missing);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(stderr.contains("ROTA_TOKEN"), "{stderr}");
}
