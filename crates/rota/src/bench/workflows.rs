//! `--mode workflows`: what dependencies cost and how soon a join runs (docs/workflows.md).
//!
//! - **Accept**: a fan-out of `--wf-size` tasks (a root, its members, one join waiting for every
//!   member) submitted in one request: the time to its answer.
//! - **Join**: the members run; a claimer long-polls the join's queue; the time from the last
//!   member's acknowledged completion to the join's claim answer.
//! - **Chains**: `--wf-chains` chains of `--wf-chain-len` tasks (submitted as workflows of at
//!   most 10,000 tasks) drained with `--consumers` claimers of up to `--batch` tasks; the ratio
//!   to as many independent tasks drained the same way.

use super::flow::{drain, enqueue};
use super::{complete_all, BenchArgs, Figure};
use anyhow::{bail, Result};
use rota_client::{ClaimOptions, Client, NewTask, WorkflowTaskDef};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct WorkflowArgs {
    /// Tasks in the workflows mode's fan-out (a root, the members, one join).
    #[arg(long, default_value_t = 10_000)]
    wf_size: usize,
    /// Chains in the workflows mode's chain drain.
    #[arg(long, default_value_t = 10_000)]
    wf_chains: usize,
    /// Tasks per chain.
    #[arg(long, default_value_t = 10)]
    wf_chain_len: usize,
}

/// Most tasks one submission may hold.
const PER_WORKFLOW: usize = rota_core::workflow::MAX_WORKFLOW_TASKS;

pub async fn run(args: &BenchArgs, client: &Client, tag: u32) -> Result<Vec<Figure>> {
    let w = &args.workflows;
    let mut out = Vec::new();
    let (accept_ms, join_ms) = fan_out(args, client, tag).await?;
    out.push((
        format!("workflows: {}-task fan-out accepted in", w.wf_size),
        accept_ms,
        "ms",
    ));
    out.push((
        "workflows: last member acknowledged to join claimed".into(),
        join_ms,
        "ms",
    ));

    let len = w.wf_chain_len.max(1);
    let total = (w.wf_chains * len) as u64;
    let plain = format!("bench-wf-plain-{tag}");
    enqueue(args, client, &plain, total, |_| None).await?;
    let (independent, _) = drain(args, client, &plain, total, None).await?;
    let chains = format!("bench-wf-chains-{tag}");
    let per = (PER_WORKFLOW / len).max(1);
    let mut made = 0;
    while made < w.wf_chains {
        let n = per.min(w.wf_chains - made);
        let mut tasks = Vec::with_capacity(n * len);
        for c in made..made + n {
            for step in 0..len {
                let t = WorkflowTaskDef::new(
                    format!("c{c}s{step}"),
                    &chains,
                    NewTask::new("noop", &serde_json::json!({})),
                );
                tasks.push(if step == 0 {
                    t
                } else {
                    t.after(format!("c{c}s{}", step - 1))
                });
            }
        }
        client.submit_workflow(&tasks).await?;
        made += n;
    }
    let (chained, _) = drain(args, client, &chains, total, None).await?;
    out.push((
        format!("workflows: drain, {total} independent tasks"),
        independent,
        "tasks/s",
    ));
    out.push((
        format!("workflows: drain, {} chains of {len}", w.wf_chains),
        chained,
        "tasks/s",
    ));
    out.push((
        "workflows: chains / independent (drain)".into(),
        chained / independent,
        "x",
    ));
    Ok(out)
}

/// The fan-out's acceptance time and its join's latency, both in ms.
async fn fan_out(args: &BenchArgs, client: &Client, tag: u32) -> Result<(f64, f64)> {
    let size = args.workflows.wf_size.max(3);
    let (root_q, members_q, join_q) = (
        format!("bench-wf-root-{tag}"),
        format!("bench-wf-members-{tag}"),
        format!("bench-wf-join-{tag}"),
    );
    let noop = || NewTask::new("noop", &serde_json::json!({}));
    let members = size - 2;
    let mut tasks = vec![WorkflowTaskDef::new("root", &root_q, noop())];
    for i in 0..members {
        tasks.push(WorkflowTaskDef::new(format!("m{i}"), &members_q, noop()).after("root"));
    }
    let mut join = WorkflowTaskDef::new("join", &join_q, noop());
    join.depends_on = (0..members).map(|i| format!("m{i}")).collect();
    tasks.push(join);
    let t = Instant::now();
    client.submit_workflow(&tasks).await?;
    let accept_ms = t.elapsed().as_secs_f64() * 1000.0;

    let opts = |max: usize, wait_ms: u64| ClaimOptions {
        worker: "bench-wf".into(),
        max,
        wait_ms: Some(wait_ms),
        lease_ms: Some(300_000),
        ..Default::default()
    };
    let root = client.claim(&root_q, &opts(1, 5_000)).await?;
    complete_all(client, &root).await?;
    // Every member but one completes; the last is held.
    let mut last = None;
    let mut done = 0;
    while done + last.iter().count() < members {
        let mut got = client.claim(&members_q, &opts(args.batch, 5_000)).await?;
        if got.is_empty() {
            bail!("the members stopped coming ({done} of {members} done)");
        }
        if last.is_none() {
            last = got.pop();
        }
        if !got.is_empty() {
            done += complete_all(client, &got).await? as usize;
        }
    }
    let last = last.expect("at least one member");
    let claimer = {
        let (client, join_q) = (client.clone(), join_q.clone());
        tokio::spawn(async move {
            let got = client.claim(&join_q, &opts(1, 10_000)).await;
            (got, Instant::now())
        })
    };
    // Let the claim start waiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    complete_all(client, std::slice::from_ref(&last)).await?;
    let acked = Instant::now();
    let (got, claimed) = claimer.await?;
    let got = got?;
    if got.len() != 1 {
        bail!("the join was not claimed within 10 s of its last member");
    }
    complete_all(client, &got).await?;
    let join_ms = claimed.saturating_duration_since(acked).as_secs_f64() * 1000.0;
    Ok((accept_ms, join_ms))
}
