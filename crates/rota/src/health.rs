//! `rota health`: probe a server's `/healthz` (or, with `--ready`, `/readyz`) and exit 0 only on
//! a 200. For container health checks in images that hold nothing but the `rota` binary (no
//! curl, no shell): `HEALTHCHECK CMD ["/rota", "health", "--ready"]`.

use anyhow::{bail, Context, Result};
use std::time::Duration;

#[derive(clap::Args)]
pub struct HealthArgs {
    /// Probe `/readyz` (the store's writers run, commit and have a current schema) instead of
    /// `/healthz` (the process serves).
    #[arg(long)]
    ready: bool,
    /// Give up after this long (connect and answer), e.g. `2s`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    timeout: Duration,
}

/// The endpoint probed for `base` (the `--url`, with or without a trailing slash).
fn endpoint(base: &str, ready: bool) -> String {
    let path = if ready { "readyz" } else { "healthz" };
    format!("{}/{path}", base.trim_end_matches('/'))
}

pub fn run(url: Option<&str>, args: HealthArgs) -> Result<()> {
    let target = endpoint(url.unwrap_or(crate::cli::DEFAULT_URL), args.ready);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        // A probe goes straight to the server: never through HTTP_PROXY from the environment.
        let http = reqwest::Client::builder()
            .timeout(args.timeout)
            .no_proxy()
            .build()
            .context("cannot build the HTTP client")?;
        let answer = http
            .get(&target)
            .send()
            .await
            .with_context(|| format!("{target}: no answer"))?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        let body = body.trim();
        if status != reqwest::StatusCode::OK {
            bail!("{target} answered {status}: {body}");
        }
        println!("ok: {target} answered {status}");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_endpoint_follows_the_flag() {
        assert_eq!(
            super::endpoint("http://127.0.0.1:7070", false),
            "http://127.0.0.1:7070/healthz"
        );
        assert_eq!(
            super::endpoint("http://rota:7070/", true),
            "http://rota:7070/readyz"
        );
    }
}
