//! `rota bench --mode servers` (PostgreSQL only): the batch drain through one server, then
//! through two servers on the same database, with the same consumers in total (spread evenly
//! over the servers) and the same number of tasks; and the ratio.

use super::{drain, enqueue_all, BenchArgs, Figure, Server};
use anyhow::{Context, Result};
use rota_client::Client;

pub async fn run(
    args: &BenchArgs,
    first: &Server,
    client: &Client,
    tag: u32,
) -> Result<Vec<Figure>> {
    let url = args
        .database_url
        .as_deref()
        .context("--mode servers needs --database-url (several servers share one database)")?;
    let (_second, other) = first.peer(url).await?;
    let mut out = Vec::new();
    let mut rates = Vec::new();
    for (n, clients) in [(1, vec![client.clone()]), (2, vec![client.clone(), other])] {
        let queue = format!("bench-servers-{tag}-{n}");
        let queues = std::slice::from_ref(&queue);
        enqueue_all(args, client, queues, args.tasks, args.batch, "enqueue").await?;
        let (rate, _) = drain(args, &clients, queues, args.consumers).await?;
        out.push((format!("batch drain, {n} server(s)"), rate, "tasks/s"));
        rates.push(rate);
    }
    out.push((
        "batch drain, 2 servers / 1".into(),
        rates[1] / rates[0],
        "x",
    ));
    Ok(out)
}
