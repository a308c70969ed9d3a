//! The Faktory door: the Faktory Work Protocol (version 2) on a second listener, so that
//! Faktory's client libraries run against Rota unchanged.
//!
//! The protocol is lines: a verb, a space, a JSON argument, CRLF; the server answers in RESP
//! (`+OK`, `-ERR message`, `$<n>` bulk strings, `$-1` for nothing). Every command is a call
//! into the same [`Service`](crate::service::Service) as the HTTP API, made by the caller the
//! connection's password proves (see [`crate::auth::token`] for how a key is checked without
//! the server knowing it), admitted against the same limits once per command.
//!
//! A malformed line or an oversized one closes only its connection; how connections are
//! admitted, timed and bounded is in [`connection`].

mod commands;
mod config;
mod connection;
pub mod job;
mod mutate;
mod pattern;
pub mod workers;

pub use config::FaktoryConfig;
pub use connection::serve;

use crate::auth::{Caller, Credential};
use crate::error::{ApiError, ApiResult, ErrorKind};

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
    /// The caller HELLO admitted, whose body budgets (its key's and tenant's) the
    /// connection's long lines are charged to.
    charge_to: Caller,
}

impl Session {
    fn credential(&self) -> Option<Credential<'_>> {
        self.proof.map(|proof| Credential::FaktoryProof {
            proof,
            key: self.key.as_deref(),
        })
    }
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
