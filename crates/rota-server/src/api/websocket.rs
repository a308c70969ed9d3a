//! `GET /v1/events/ws`: the event stream as a WebSocket, for clients that prefer one to
//! Server-Sent Events. The same rules: a caller sees what `GET /v1/events` would show it;
//! `?after=<cursor>` resumes (a client keeps the last `cursor` it received, so a reconnect
//! misses nothing still retained); browsers authenticate with `?ticket=` from
//! `POST /v1/events/tickets` (or the dashboard's session cookie). Each event is one text frame
//! holding the event as `GET /v1/events` shows it; an idle socket gets a ping every
//! `events.keepalive_ms`; it closes (1001) when the server stops or the credential stops
//! being valid. Frames the client sends are ignored, and one over
//! `events.ws_max_message_bytes` closes the socket. Opened with the dashboard's session
//! cookie, the upgrade must come from a page of this server: `Origin` must match `Host`
//! (bearer tokens and tickets are not sent by a browser on its own, so they need no check).

use super::events::{EventBody, StreamParams};
use crate::auth::{BySessionCookie, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorKind};
use crate::extract::ApiQuery;
use crate::service::EventFollow;
use crate::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use axum::Extension;
use std::time::Duration;

#[utoipa::path(get, path = "/v1/events/ws", tag = "events", params(StreamParams),
    responses((status = 101, description = "a WebSocket of events, one JSON text frame each"),
              (status = 426, description = "not a WebSocket handshake (upgrade_required)", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn websocket(
    State(st): State<AppState>,
    caller: Caller,
    by_cookie: Option<Extension<BySessionCookie>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> ApiResult<Response> {
    if by_cookie.is_some() {
        same_origin(&headers)?;
    }
    let after = p.after.unwrap_or(0);
    let q = p.query(after, &st);
    // Checked (a negative cursor, unknown types, the stream limit) and the stream's slot taken
    // before the upgrade, so refusals are plain HTTP.
    let follow = st.service.follow_events(&caller, q)?;
    // After the query's checks, so a bad query is named as such; the slot is given back when
    // `follow` drops.
    let ws = ws.map_err(no_handshake)?;
    let keepalive = Duration::from_millis(st.config.events.keepalive_ms);
    let max = st.config.events.ws_max_message_bytes;
    Ok(ws
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| follow_on(socket, follow, keepalive)))
}

/// Refuses an upgrade whose `Origin` is not this server as the request addressed it (`Host`):
/// with the session cookie, only the dashboard's own pages may read the stream.
fn same_origin(headers: &HeaderMap) -> ApiResult<()> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let refuse = |why: String| ApiError::new(ErrorKind::Forbidden, "forbidden", why);
    let Some(origin) = text(header::ORIGIN) else {
        return Err(refuse(
            "a WebSocket authenticated by the dashboard's session cookie must send Origin; \
             other clients authenticate with a bearer token or ?ticket="
                .into(),
        ));
    };
    let host = text(header::HOST).unwrap_or_default();
    if origin_authority(origin).is_none_or(|o| Some(o) != host_authority(host, origin)) {
        return Err(refuse(format!(
            "Origin `{origin}` is not this server (`{host}`): the dashboard's session cookie \
             opens the event WebSocket only from the dashboard's own pages"
        )));
    }
    Ok(())
}

/// `host:port` of an `Origin` (`scheme://host[:port]`), the port spelled out.
fn origin_authority(origin: &str) -> Option<(String, u16)> {
    let uri: axum::http::Uri = origin.parse().ok()?;
    let default = default_port(uri.scheme_str()?)?;
    let a = uri.authority()?;
    Some((
        a.host().to_ascii_lowercase(),
        a.port_u16().unwrap_or(default),
    ))
}

/// `host:port` of a `Host` header; without a port, the origin's scheme's default.
fn host_authority(host: &str, origin: &str) -> Option<(String, u16)> {
    let a: axum::http::uri::Authority = host.parse().ok()?;
    let scheme = origin.split_once("://")?.0;
    let port = a.port_u16().or_else(|| default_port(scheme))?;
    Some((a.host().to_ascii_lowercase(), port))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// A request without a WebSocket handshake gets the API's JSON error (axum's own rejection is
/// plain text), naming what was missing and the SSE route that needs none.
fn no_handshake(why: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        ErrorKind::UpgradeRequired,
        "upgrade_required",
        format!(
            "GET /v1/events/ws is a WebSocket and this request is not a WebSocket handshake ({}); \
             send Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13 and a \
             Sec-WebSocket-Key, or read GET /v1/events/stream (Server-Sent Events) instead",
            why.body_text().to_lowercase().trim_end_matches('.')
        ),
    )
}

async fn follow_on(mut socket: WebSocket, mut follow: EventFollow, keepalive: Duration) {
    loop {
        tokio::select! {
            next = follow.next() => match next {
                Some(Ok(events)) => {
                    for e in events {
                        let text = serde_json::to_string(&EventBody::from(e))
                            .expect("an event serializes");
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e.message, "event socket ends on a read error; the client resumes with ?after=");
                    return close(socket, "read error; reconnect with ?after=<last cursor>").await;
                }
                None => return close(socket, "the server stops or the credential is no longer valid").await,
            },
            _ = tokio::time::sleep(keepalive) => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            got = socket.recv() => match got {
                // An error includes a message over the size limit: the library closes with 1009.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn close(mut socket: WebSocket, reason: &str) {
    let frame = CloseFrame {
        code: 1001,
        reason: reason.into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}
