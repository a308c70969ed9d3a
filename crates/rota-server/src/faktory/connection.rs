//! The Faktory door's connections: admitted and evicted like the HTTP door's (see
//! [`crate::connections`]), read one line at a time within deadlines and byte budgets, so that
//! no one can hold the door, or the server's memory, without a password.
//!
//! - HELLO must arrive within `limits.header_read_timeout_ms` of connecting, in a line of at
//!   most `faktory.max_hello_bytes`; `faktory.max_failed_hellos` failures close the connection.
//! - After HELLO, a line must be complete within `limits.body_read_timeout_ms` of its first
//!   byte, and a connection with no command in progress closes after `faktory.idle_timeout_ms`.
//! - At `limits.max_connections` (or `limits.max_connections_per_address`) a new connection
//!   closes the oldest one that is not running a command, unauthenticated ones first.
//! - A line's bytes past the first [`FREE_LINE_BYTES`] are charged to the body budgets
//!   (`limits.max_body_bytes_in_flight` and, after HELLO, the key's and tenant's
//!   `limits.max_body_bytes_in_flight_per_client`) until its command is answered, and the
//!   connection's buffers are let go after a large line.

use super::{commands, Reply, Session};
use crate::bodies::BodyPermit;
use crate::connections::{Admitted, Conn, Gate};
use crate::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Line bytes held without a charge to the body budgets: what the connection's read buffer
/// holds anyway, and more than any command but PUSH, PUSHB and MUTATE needs.
const FREE_LINE_BYTES: usize = 16 * 1024;
/// A buffer grown past this by a large line or reply is let go once it is answered.
const KEEP_BUFFER_BYTES: usize = 64 * 1024;

/// Accepts Faktory connections until the server shuts down.
pub async fn serve(listener: TcpListener, state: AppState) {
    let gate = Gate::new(&state.config.limits);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = state.shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "faktory: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (conn, slot) = match gate.admit(peer.ip(), &state.shutdown).await {
            Admitted::Open(conn, slot) => (conn, slot),
            Admitted::Refused => continue,
            Admitted::ShuttingDown => return,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (r, w) = stream.into_split();
            if let Err(e) = connection(r, w, &state, &conn).await {
                tracing::debug!(%peer, error = %e, "faktory: connection closed");
            }
        });
    }
}

/// Why reading stopped short of a line.
enum Stop {
    /// The peer closed the connection (between commands when the line is empty).
    Eof,
    /// A deadline passed; the message says which.
    Late(String),
    /// Evicted to make room, or the server is stopping.
    Closed,
    /// The line is over its cap, or its bytes over a budget; the message says which.
    Refused(String),
    Io(std::io::Error),
}

/// What one connection is waiting against.
struct Bounds<'a> {
    st: &'a AppState,
    conn: &'a Conn,
}

impl Bounds<'_> {
    /// `fut`, unless `deadline` (with `late` as the reason) passes, the connection is evicted
    /// or the server stops first.
    async fn within<T>(
        &self,
        deadline: Instant,
        late: impl FnOnce() -> String,
        fut: impl std::future::Future<Output = T>,
    ) -> Result<T, Stop> {
        tokio::select! {
            v = fut => Ok(v),
            _ = tokio::time::sleep_until(deadline) => Err(Stop::Late(late())),
            _ = self.conn.close.cancelled() => Err(Stop::Closed),
            _ = self.st.shutdown.cancelled() => Err(Stop::Closed),
        }
    }
}

/// One connection: the greeting, then one reply per command until END, EOF, a protocol
/// error, a deadline, eviction or shutdown.
async fn connection(
    r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
    st: &AppState,
    conn: &Arc<Conn>,
) -> std::io::Result<()> {
    let hi = if st.auth.enabled() {
        format!(
            "+HI {{\"v\":2,\"i\":1,\"s\":\"{}\"}}\r\n",
            crate::auth::token::FAKTORY_SALT
        )
    } else {
        "+HI {\"v\":2}\r\n".to_owned()
    };
    w.write_all(hi.as_bytes()).await?;
    let (limits, fk) = (&st.config.limits, &st.config.faktory);
    let hello_by = Instant::now() + Duration::from_millis(limits.header_read_timeout_ms);
    let bounds = Bounds { st, conn };
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    let mut out = Vec::new();
    let mut session: Option<Session> = None;
    let mut failed_hellos = 0u32;
    let result = loop {
        let read = read_line(&bounds, &mut reader, &mut line, session.as_ref(), hello_by).await;
        let _charge = match read {
            Ok(charge) => charge,
            Err(Stop::Eof | Stop::Closed) => break Ok(()),
            Err(Stop::Io(e)) => break Err(e),
            Err(Stop::Late(m) | Stop::Refused(m)) => {
                out.clear();
                Reply::Error(m).encode(&mut out);
                let _ = w.write_all(&out).await;
                break Ok(());
            }
        };
        let _busy = conn.enter();
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
            Some(s) => commands::run(st, s, verb, arg, conn.addr()).await,
            None => {
                let reply = match verb {
                    "HELLO" => match commands::hello(st, arg).await {
                        Ok(s) => {
                            session = Some(s);
                            conn.set_authenticated();
                            Reply::Ok
                        }
                        Err(e) => e.into(),
                    },
                    _ => Reply::Error(format!("send HELLO first, not `{verb}`")),
                };
                if let Reply::Error(m) = &reply {
                    failed_hellos += 1;
                    if failed_hellos >= fk.max_failed_hellos {
                        // A password guesser, or a client speaking another protocol: either
                        // way, nothing more will come of this connection.
                        let m = format!(
                            "{m}; closing after {failed_hellos} failed HELLO(s) (faktory.max_failed_hellos)"
                        );
                        out.clear();
                        Reply::Error(m).encode(&mut out);
                        let _ = w.write_all(&out).await;
                        break Ok(());
                    }
                }
                reply
            }
        };
        out.clear();
        reply.encode(&mut out);
        if let Err(e) = w.write_all(&out).await {
            break Err(e);
        }
        // After a large command or reply, let the memory go rather than keep it per connection.
        if line.capacity() > KEEP_BUFFER_BYTES {
            line = Vec::new();
        }
        if out.capacity() > KEEP_BUFFER_BYTES {
            out = Vec::new();
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

/// Reads the next line into `line` (cleared first), within its deadlines and caps; answers
/// the line's charge to the body budgets, to hold until its command is answered.
async fn read_line(
    b: &Bounds<'_>,
    reader: &mut BufReader<impl AsyncRead + Unpin>,
    line: &mut Vec<u8>,
    session: Option<&Session>,
    hello_by: Instant,
) -> Result<Vec<BodyPermit>, Stop> {
    let (limits, fk) = (&b.st.config.limits, &b.st.config.faktory);
    line.clear();
    let no_hello = || {
        format!(
            "no HELLO within {} ms (limits.header_read_timeout_ms); closing",
            limits.header_read_timeout_ms
        )
    };
    // Wait for the line's first byte: before HELLO within HELLO's deadline, after it within
    // the idle timeout.
    let first_by = match session {
        None => hello_by,
        Some(_) => Instant::now() + Duration::from_millis(fk.idle_timeout_ms),
    };
    let any = b
        .within(first_by, &no_hello, reader.fill_buf())
        .await
        .map(|r| r.map(|buf| !buf.is_empty()))
        .map_err(|e| match (e, session) {
            // An idle connection closes without a word: its client is not waiting for one.
            (Stop::Late(_), Some(_)) => Stop::Closed,
            (e, _) => e,
        })?
        .map_err(Stop::Io)?;
    if !any {
        return Err(Stop::Eof);
    }
    b.conn.bytes_arrived();
    let (cap, cap_key, line_by) = match session {
        None => (fk.max_hello_bytes, "faktory.max_hello_bytes", hello_by),
        Some(_) => (
            limits.max_body_bytes,
            "limits.max_body_bytes",
            Instant::now() + Duration::from_millis(limits.body_read_timeout_ms),
        ),
    };
    let late = || match session {
        None => no_hello(),
        Some(_) => format!(
            "the command did not arrive within {} ms (limits.body_read_timeout_ms); closing",
            limits.body_read_timeout_ms
        ),
    };
    let mut charges = Vec::new();
    let mut charged = FREE_LINE_BYTES;
    loop {
        let buf = b
            .within(line_by, &late, reader.fill_buf())
            .await?
            .map_err(Stop::Io)?;
        if buf.is_empty() {
            return Err(if line.is_empty() {
                Stop::Eof
            } else {
                Stop::Refused("the connection ended inside a command".into())
            });
        }
        let (n, done) = match buf.iter().position(|&c| c == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let total = line.len() + n;
        // The CRLF is not part of the command.
        if total > cap + 2 {
            return Err(Stop::Refused(format!(
                "the command is over {cap} bytes ({cap_key}); closing"
            )));
        }
        if total > charged {
            // Charge in doubling steps, so a long line costs a few budget calls, not one per read.
            let more = (charged * 2).max(total).min(cap + 2) - charged;
            let (clients, label) = match session {
                Some(s) => (
                    s.charge_to.body_clients(),
                    s.charge_to.principal.label.as_str(),
                ),
                None => (&[][..], "this connection"),
            };
            let admit = b.st.bodies.admit(clients, label, more);
            let permit = b
                .within(line_by, &late, admit)
                .await?
                .map_err(|e| Stop::Refused(format!("{}: {}; closing", e.code, e.message)))?;
            charges.push(permit);
            charged += more;
        }
        line.extend_from_slice(&reader.buffer()[..n]);
        reader.consume(n);
        if done {
            return Ok(charges);
        }
    }
}
