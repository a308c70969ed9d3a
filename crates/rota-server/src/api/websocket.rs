//! `GET /v1/events/ws`: the event stream as a WebSocket, for clients that prefer one to
//! Server-Sent Events. The same rules: a caller sees what `GET /v1/events` would show it;
//! `?after=<cursor>` resumes (a client keeps the last `cursor` it received, so a reconnect
//! misses nothing still retained); browsers authenticate with `?ticket=` from
//! `POST /v1/events/tickets` (or the dashboard's session cookie). Each event is one text frame
//! holding the event as `GET /v1/events` shows it; an idle socket gets a ping every
//! `events.keepalive_ms`; it closes (1001) when the server stops or the credential stops
//! being valid. Frames the client sends are ignored.

use super::events::{EventBody, StreamParams};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorKind};
use crate::extract::ApiQuery;
use crate::service::EventFollow;
use crate::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use std::time::Duration;

#[utoipa::path(get, path = "/v1/events/ws", tag = "events", params(StreamParams),
    responses((status = 101, description = "a WebSocket of events, one JSON text frame each"),
              (status = 426, description = "not a WebSocket handshake (upgrade_required)", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn websocket(
    State(st): State<AppState>,
    caller: Caller,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    ApiQuery(p): ApiQuery<StreamParams>,
) -> ApiResult<Response> {
    let after = p.after.unwrap_or(0);
    let q = p.query(after, &st);
    // Checked (a negative cursor, unknown types, the stream limit) and the stream's slot taken
    // before the upgrade, so refusals are plain HTTP.
    let follow = st.service.follow_events(&caller, q)?;
    // After the query's checks, so a bad query is named as such; the slot is given back when
    // `follow` drops.
    let ws = ws.map_err(no_handshake)?;
    let keepalive = Duration::from_millis(st.config.events.keepalive_ms);
    Ok(ws.on_upgrade(move |socket| follow_on(socket, follow, keepalive)))
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
