//! The Vercel AI SDK UI message stream v1 (`shared/specs/ai-sdk-ui-message-stream.md`): one `data: <json>` SSE
//! event per chunk, camelCase keys, no nulls, no unknown keys or chunk types, `data: [DONE]` at the end, and
//! `: keep-alive` comments while idle. Chunks are built key by key so nothing optional can leak in as null.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::Stream;
use mentorfy_llm::FinishReason;
use mentorfy_mentor::ChatEvent;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// Shown when the turn ends without its finish event (the server is shutting down, say).
const INTERRUPTED: &str = "The answer was interrupted. Please try again.";

/// The chunk object for one event.
pub fn chunk(event: &ChatEvent) -> Value {
    match event {
        ChatEvent::Start { message_id } => json!({"type": "start", "messageId": message_id}),
        ChatEvent::StepStart => json!({"type": "start-step"}),
        ChatEvent::TextStart { id } => json!({"type": "text-start", "id": id}),
        ChatEvent::TextDelta { id, delta } => json!({"type": "text-delta", "id": id, "delta": delta}),
        ChatEvent::TextEnd { id } => json!({"type": "text-end", "id": id}),
        ChatEvent::ReasoningStart { id } => json!({"type": "reasoning-start", "id": id}),
        ChatEvent::ReasoningDelta { id, delta, signature } => {
            let mut c = json!({"type": "reasoning-delta", "id": id, "delta": delta});
            if let Some(sig) = signature {
                c["providerMetadata"] = json!({"anthropic": {"signature": sig}});
            }
            c
        }
        ChatEvent::ReasoningEnd { id } => json!({"type": "reasoning-end", "id": id}),
        ChatEvent::ToolInputStart { call_id, name } => {
            json!({"type": "tool-input-start", "toolCallId": call_id, "toolName": name})
        }
        ChatEvent::ToolInputDelta { call_id, delta } => {
            json!({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": delta})
        }
        ChatEvent::ToolInputAvailable { call_id, name, input } => {
            json!({"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": input})
        }
        ChatEvent::ToolInputError { call_id, name, input, error } => json!({
            "type": "tool-input-error", "toolCallId": call_id, "toolName": name, "input": input, "errorText": error
        }),
        ChatEvent::ToolOutput { call_id, output } => {
            json!({"type": "tool-output-available", "toolCallId": call_id, "output": output})
        }
        ChatEvent::ToolOutputError { call_id, error } => {
            json!({"type": "tool-output-error", "toolCallId": call_id, "errorText": error})
        }
        ChatEvent::StepFinish => json!({"type": "finish-step"}),
        ChatEvent::Error { text } => json!({"type": "error", "errorText": text}),
        ChatEvent::Finish { reason, metadata } => {
            let mut c = json!({"type": "finish", "finishReason": reason.as_str()});
            let metadata = strip_nulls(metadata);
            if !metadata.is_empty() {
                c["messageMetadata"] = Value::Object(metadata);
            }
            c
        }
    }
}

fn strip_nulls(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `data: <compact json>\n\n`
pub fn frame(value: &Value) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"data: ");
    // serde_json's compact writer never emits a raw newline, so one chunk is one line.
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

const DONE: &[u8] = b"data: [DONE]\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

struct State {
    events: mpsc::Receiver<ChatEvent>,
    keep_alive: Duration,
    /// Whether a step is open (to close it if the turn is cut short).
    in_step: bool,
    finished: bool,
    done: bool,
}

/// The SSE body for a turn's events: frames each event, adds keep-alive comments while idle, and always ends
/// with `finish` and `[DONE]` even if the turn was cut short. Dropping the body (the client went away) drops the
/// receiver, which tells the turn to stop.
pub fn body(
    events: mpsc::Receiver<ChatEvent>,
    keep_alive: Duration,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let state = State {
        events,
        keep_alive: keep_alive.max(Duration::from_millis(10)),
        in_step: false,
        finished: false,
        done: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let next = tokio::time::timeout(st.keep_alive, st.events.recv()).await;
        let bytes = match next {
            Err(_) => Bytes::from_static(KEEP_ALIVE),
            Ok(Some(event)) => {
                match &event {
                    ChatEvent::StepStart => st.in_step = true,
                    ChatEvent::StepFinish => st.in_step = false,
                    ChatEvent::Finish { .. } => st.finished = true,
                    _ => {}
                }
                frame(&chunk(&event))
            }
            Ok(None) => {
                st.done = true;
                let mut out = Vec::new();
                if !st.finished {
                    out.extend_from_slice(&frame(&chunk(&ChatEvent::Error { text: INTERRUPTED.into() })));
                    if st.in_step {
                        out.extend_from_slice(&frame(&chunk(&ChatEvent::StepFinish)));
                    }
                    let finish = ChatEvent::Finish { reason: FinishReason::Error, metadata: Map::new() };
                    out.extend_from_slice(&frame(&chunk(&finish)));
                }
                out.extend_from_slice(DONE);
                Bytes::from(out)
            }
        };
        Some((Ok(bytes), st))
    })
}

/// The 200 response with the protocol's headers.
pub fn response(events: mpsc::Receiver<ChatEvent>, keep_alive: Duration) -> Response {
    let mut res = Response::new(Body::from_stream(body(events, keep_alive)));
    *res.status_mut() = StatusCode::OK;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    h.insert("x-vercel-ai-ui-message-stream", HeaderValue::from_static("v1"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use futures::StreamExt;

    fn sse_of(events: Vec<ChatEvent>) -> String {
        let (tx, rx) = mpsc::channel(64);
        for e in events {
            tx.try_send(e).unwrap();
        }
        drop(tx);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let parts: Vec<_> = body(rx, Duration::from_secs(5)).collect().await;
            parts.into_iter().map(|b| String::from_utf8(b.unwrap().to_vec()).unwrap()).collect()
        })
    }

    /// The canonical example of the spec (§8), event for event, byte for byte.
    #[test]
    fn the_canonical_example_is_reproduced_exactly() {
        let events = vec![
            ChatEvent::Start { message_id: "msg_01".into() },
            ChatEvent::StepStart,
            ChatEvent::TextStart { id: "0".into() },
            ChatEvent::TextDelta { id: "0".into(), delta: "Let me check the weather.".into() },
            ChatEvent::TextEnd { id: "0".into() },
            ChatEvent::ToolInputStart { call_id: "toolu_01".into(), name: "get_weather".into() },
            ChatEvent::ToolInputDelta { call_id: "toolu_01".into(), delta: "{\"city\":\"Paris\"}".into() },
            ChatEvent::ToolInputAvailable {
                call_id: "toolu_01".into(),
                name: "get_weather".into(),
                input: json!({"city": "Paris"}),
            },
            ChatEvent::ToolOutput { call_id: "toolu_01".into(), output: json!({"city": "Paris", "tempC": 21}) },
            ChatEvent::StepFinish,
            ChatEvent::StepStart,
            ChatEvent::TextStart { id: "1".into() },
            ChatEvent::TextDelta { id: "1".into(), delta: "It is sunny in Paris.".into() },
            ChatEvent::TextEnd { id: "1".into() },
            ChatEvent::StepFinish,
            ChatEvent::Finish { reason: FinishReason::Stop, metadata: Map::new() },
        ];
        let got = sse_of(events);
        let spec = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/specs/ai-sdk-ui-message-stream.md"
        ));
        let Ok(spec) = spec else {
            eprintln!("SKIPPED: ../shared/specs is not beside the project");
            return;
        };
        // The spec's example carries usage in a separate message-metadata chunk; ours rides on finish. Compare
        // everything else verbatim.
        let start = spec.find("data: {\"type\":\"start\",\"messageId\":\"msg_01\"}").unwrap();
        let end = start + spec[start..].find("data: [DONE]\n").unwrap() + "data: [DONE]\n\n".len();
        let expected = spec[start..end].replace(
            "data: {\"type\":\"message-metadata\",\"messageMetadata\":{\"inputTokens\":20,\"outputTokens\":10}}\n\n",
            "",
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn a_turn_cut_short_still_ends_with_error_finish_and_done() {
        let got = sse_of(vec![
            ChatEvent::Start { message_id: "m".into() },
            ChatEvent::StepStart,
            ChatEvent::TextStart { id: "0".into() },
            ChatEvent::TextDelta { id: "0".into(), delta: "par".into() },
        ]);
        assert!(
            got.ends_with(
                "data: {\"type\":\"error\",\"errorText\":\"The answer was interrupted. Please try again.\"}\n\n\
             data: {\"type\":\"finish-step\"}\n\n\
             data: {\"type\":\"finish\",\"finishReason\":\"error\"}\n\ndata: [DONE]\n\n"
            ),
            "{got}"
        );
        assert!(!got.contains("text-end"), "an interrupted text part is not closed: {got}");
    }

    #[test]
    fn finish_metadata_never_carries_nulls_and_signatures_go_in_provider_metadata() {
        let mut meta = Map::new();
        meta.insert("costUsd".into(), Value::Null);
        meta.insert("inputTokens".into(), json!(3));
        let c = chunk(&ChatEvent::Finish { reason: FinishReason::ToolCalls, metadata: meta });
        assert_eq!(c, json!({"type": "finish", "finishReason": "tool-calls", "messageMetadata": {"inputTokens": 3}}));
        let empty = chunk(&ChatEvent::Finish { reason: FinishReason::Stop, metadata: Map::new() });
        assert_eq!(empty, json!({"type": "finish", "finishReason": "stop"}));
        let r =
            chunk(&ChatEvent::ReasoningDelta { id: "r0".into(), delta: String::new(), signature: Some("sig".into()) });
        assert_eq!(r["providerMetadata"]["anthropic"]["signature"], "sig");
        let r = chunk(&ChatEvent::ReasoningDelta { id: "r0".into(), delta: "x".into(), signature: None });
        assert!(r.get("providerMetadata").is_none());
    }

    #[test]
    fn idle_streams_get_keep_alive_comments() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (tx, rx) = mpsc::channel(4);
            let mut s = Box::pin(body(rx, Duration::from_millis(20)));
            let first = s.next().await.unwrap().unwrap();
            assert_eq!(&first[..], KEEP_ALIVE);
            tx.send(ChatEvent::Start { message_id: "m".into() }).await.unwrap();
            let next = s.next().await.unwrap().unwrap();
            assert_eq!(&next[..], b"data: {\"type\":\"start\",\"messageId\":\"m\"}\n\n");
        });
    }
}
