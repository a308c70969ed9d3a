//! The Faktory door: the Faktory Work Protocol (version 2) on a second listener, so that
//! Faktory's client libraries run against Rota unchanged.
//!
//! The protocol is lines: a verb, a space, a JSON argument, CRLF; the server answers in RESP
//! (`+OK`, `-ERR message`, `$<n>` bulk strings, `$-1` for nothing). Every command is a call
//! into the same [`Service`](crate::service::Service) as the HTTP API, made by the caller the
//! connection's password proves (see [`crate::auth::token`] for how a key is checked without
//! the server knowing it), admitted against the same limits once per command.
//!
//! A malformed line or an oversized one closes only its connection.

mod commands;
pub mod job;
mod mutate;
pub mod workers;

use crate::auth::{token, Credential};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::AppState;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A reply, as RESP puts it on the wire.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Ok,
    /// `-ERR message`
    Error(String),
    /// A bulk string (JSON here), or nothing (`$-1`).
    Bulk(Option<String>),
}

impl Reply {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Ok => out.extend_from_slice(b"+OK\r\n"),
            Reply::Error(m) => {
                out.extend_from_slice(b"-ERR ");
                // One line: a newline inside would end the reply early.
                out.extend(
                    m.bytes()
                        .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
                );
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Reply::Bulk(Some(s)) => {
                out.extend_from_slice(format!("${}\r\n", s.len()).as_bytes());
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        let mut m = format!("{}: {}", e.code, e.message);
        if let Some(s) = e.retry_after {
            m.push_str(&format!(" (retry in {s} s)"));
        }
        Reply::Error(m)
    }
}

/// Who a connection is, once `HELLO` succeeded.
pub(crate) struct Session {
    /// The password proof (none when access control is off).
    proof: Option<[u8; 32]>,
    /// The key the proof matched, so later commands need not search for it.
    key: Option<String>,
    tenant: String,
    /// A worker process's id; producers send none.
    wid: Option<String>,
}

impl Session {
    fn credential(&self) -> Option<Credential<'_>> {
        self.proof.map(|proof| Credential::FaktoryProof {
            proof,
            key: self.key.as_deref(),
        })
    }
}

/// Accepts Faktory connections until the server shuts down.
pub async fn serve(listener: TcpListener, state: AppState) {
    let slots = Arc::new(Semaphore::new(state.config.limits.max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = state.shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "faktory: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "faktory: connection refused, limits.max_connections reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (r, w) = stream.into_split();
            if let Err(e) = connection(r, w, &state).await {
                tracing::debug!(%peer, error = %e, "faktory: connection closed");
            }
        });
    }
}

/// One connection: the greeting, then one reply per command until END, EOF, a protocol
/// error or shutdown.
async fn connection(
    r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    st: &AppState,
) -> std::io::Result<()> {
    let hi = if st.auth.enabled() {
        format!(
            "+HI {{\"v\":2,\"i\":1,\"s\":\"{}\"}}\r\n",
            token::FAKTORY_SALT
        )
    } else {
        "+HI {\"v\":2}\r\n".to_owned()
    };
    w.write_all(hi.as_bytes()).await?;
    let mut reader = BufReader::new(r);
    let limit = st.config.limits.max_body_bytes;
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut session: Option<Session> = None;
    let result = loop {
        line.clear();
        let mut bounded = (&mut reader).take(limit as u64 + 2);
        let read = tokio::select! {
            r = bounded.read_until(b'\n', &mut line) => r,
            _ = st.shutdown.cancelled() => break Ok(()),
        };
        match read {
            Ok(0) => break Ok(()),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        if line.last() != Some(&b'\n') {
            let m = if line.len() > limit {
                format!("the command is over {limit} bytes (limits.max_body_bytes); closing")
            } else {
                "the connection ended inside a command".to_owned()
            };
            out.clear();
            Reply::Error(m).encode(&mut out);
            let _ = w.write_all(&out).await;
            break Ok(());
        }
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t.trim_end_matches(['\r', '\n']),
            Err(_) => {
                out.clear();
                Reply::Error("the command is not UTF-8; closing".into()).encode(&mut out);
                let _ = w.write_all(&out).await;
                break Ok(());
            }
        };
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        if verb == "END" {
            break Ok(());
        }
        let reply = match &session {
            None if verb == "HELLO" => match commands::hello(st, arg).await {
                Ok(s) => {
                    session = Some(s);
                    Reply::Ok
                }
                Err(e) => e.into(),
            },
            None => Reply::Error(format!("send HELLO first, not `{verb}`")),
            Some(s) => commands::run(st, s, verb, arg).await,
        };
        out.clear();
        reply.encode(&mut out);
        if let Err(e) = w.write_all(&out).await {
            break Err(e);
        }
    };
    if let Some(Session {
        tenant,
        wid: Some(wid),
        ..
    }) = &session
    {
        st.faktory.disconnected(tenant, wid);
    }
    result
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Invalid, "invalid", message)
}

fn parse_json<T: serde::de::DeserializeOwned>(verb: &str, arg: &str) -> ApiResult<T> {
    serde_json::from_str(arg).map_err(|e| invalid(format!("{verb} takes JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_resp() {
        let enc = |r: Reply| {
            let mut v = Vec::new();
            r.encode(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(enc(Reply::Ok), "+OK\r\n");
        assert_eq!(enc(Reply::Bulk(None)), "$-1\r\n");
        assert_eq!(enc(Reply::Bulk(Some("{}".into()))), "$2\r\n{}\r\n");
        assert_eq!(enc(Reply::Error("a\r\nb".into())), "-ERR a  b\r\n");
    }
}
