//! From an HTTP response body to [`StreamEvent`]s: the SSE [`Pipeline`] that feeds a provider [`Decoder`], and the
//! public [`LlmStream`] that hands the events to callers under the call's total deadline.
//! Dropping either drops the upstream response, which closes the connection; nothing here retries.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::time::{Instant, Sleep};

use crate::error::{LlmError, TimeoutPhase};
use crate::types::{Completion, Content, StreamEvent, ToolInput};

/// A provider's stream reader: turns SSE events into [`StreamEvent`]s and accumulates the [`Completion`].
pub(crate) trait Decoder: Send {
    /// Reads one SSE event, pushing the events it produces. An `Err` ends the stream.
    fn feed(&mut self, event: &Event, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError>;
    /// The body ended before [`Decoder::is_done`]: push the final events if that is an acceptable end, or fail.
    fn close(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError>;
    /// The end marker was read and `Finish` pushed.
    fn is_done(&self) -> bool;
    fn response_id(&self) -> Option<&str>;
    fn response_model(&self) -> Option<&str>;
}

type SseStream = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;
type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// An upstream body being decoded. Owns the response: dropping it closes the connection.
pub(crate) struct Pipeline {
    events: Option<SseStream>,
    decoder: Box<dyn Decoder>,
    pending: VecDeque<StreamEvent>,
}

impl Pipeline {
    pub(crate) fn new(response: reqwest::Response, decoder: Box<dyn Decoder>) -> Self {
        let events = response.bytes_stream().eventsource().map(|r| r.map_err(|e| e.to_string()));
        Pipeline { events: Some(Box::pin(events)), decoder, pending: VecDeque::new() }
    }

    /// A pipeline that replays a finished completion (a provider that answered JSON to a streaming request).
    pub(crate) fn replay(completion: Completion, decoder: Box<dyn Decoder>) -> Self {
        Pipeline { events: None, decoder, pending: completion_events(completion) }
    }

    pub(crate) fn response_id(&self) -> Option<&str> {
        self.decoder.response_id()
    }

    pub(crate) fn response_model(&self) -> Option<&str> {
        self.decoder.response_model()
    }

    /// The next event; `None` after `Finish` or after an error.
    pub(crate) async fn next(&mut self) -> Option<Result<StreamEvent, LlmError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            let events = self.events.as_mut()?;
            let result = match events.next().await {
                Some(Ok(event)) => self.decoder.feed(&event, &mut self.pending),
                Some(Err(e)) => Err(LlmError::Transport(format!("reading the stream: {e}"))),
                None => {
                    self.events = None;
                    self.decoder.close(&mut self.pending)
                }
            };
            if let Err(e) = result {
                self.events = None;
                self.pending.clear();
                return Some(Err(e));
            }
            if self.decoder.is_done() {
                // Stop reading: whatever follows the end marker is not ours.
                self.events = None;
            }
        }
    }

    fn into_stream(self) -> impl Stream<Item = Result<StreamEvent, LlmError>> + Send + 'static {
        futures::stream::unfold(self, |mut pipeline| async move {
            let item = pipeline.next().await?;
            Some((item, pipeline))
        })
    }
}

/// Whether an event is real content (ends the wait for the first token, and with it the retry window).
/// Block starts and ends alone are not: an error right after them may still be retried.
pub(crate) fn is_content(event: &StreamEvent) -> bool {
    !matches!(
        event,
        StreamEvent::TextStart { .. }
            | StreamEvent::TextEnd { .. }
            | StreamEvent::ReasoningStart { .. }
            | StreamEvent::ReasoningEnd { .. }
    )
}

/// Parses a tool call's accumulated input at the end of its block: `""` is `{}`; a failure keeps the raw text.
/// Returns the event's input and the value for the completion (the raw text as a JSON string on failure).
pub(crate) fn parse_tool_input(raw: &str) -> (ToolInput, Value) {
    if raw.trim().is_empty() {
        return (ToolInput::Parsed(Value::Object(serde_json::Map::new())), Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(value) => (ToolInput::Parsed(value.clone()), value),
        Err(e) => (ToolInput::Invalid { raw: raw.to_owned(), error: e.to_string() }, Value::String(raw.to_owned())),
    }
}

/// The events a stream of this completion would have produced (blocks numbered in order).
pub(crate) fn completion_events(completion: Completion) -> VecDeque<StreamEvent> {
    let mut out = VecDeque::new();
    for (block, content) in completion.message.content.iter().enumerate() {
        match content {
            Content::Text { text } => {
                out.push_back(StreamEvent::TextStart { block });
                if !text.is_empty() {
                    out.push_back(StreamEvent::TextDelta { block, text: text.clone() });
                }
                out.push_back(StreamEvent::TextEnd { block });
            }
            Content::Reasoning { text, signature } => {
                out.push_back(StreamEvent::ReasoningStart { block });
                if !text.is_empty() {
                    out.push_back(StreamEvent::ReasoningDelta { block, text: text.clone() });
                }
                if let Some(signature) = signature {
                    out.push_back(StreamEvent::ReasoningSignature { block, signature: signature.clone() });
                }
                out.push_back(StreamEvent::ReasoningEnd { block });
            }
            Content::ToolCall { id, name, input } => {
                out.push_back(StreamEvent::ToolCallStart { block, id: id.clone(), name: name.clone() });
                let (json, parsed) = match input {
                    Value::String(raw) => (raw.clone(), parse_tool_input(raw).0),
                    other => (other.to_string(), ToolInput::Parsed(other.clone())),
                };
                if !json.is_empty() {
                    out.push_back(StreamEvent::ToolCallDelta { block, id: id.clone(), json });
                }
                out.push_back(StreamEvent::ToolCallEnd { block, id: id.clone(), name: name.clone(), input: parsed });
            }
            Content::ToolResult { .. } => {}
        }
    }
    out.push_back(StreamEvent::Finish(completion));
    out
}

/// A streamed LLM call, from its first event on: yields [`StreamEvent`]s ending with `Finish`, or an error (after
/// which it ends). The call's total deadline still applies: on expiry it yields `Err(Timeout(Total))` and ends.
/// Dropping it closes the upstream connection.
pub struct LlmStream {
    prefix: VecDeque<StreamEvent>,
    inner: Option<EventStream>,
    deadline: Instant,
    sleep: Pin<Box<Sleep>>,
    attempts: u32,
    time_to_first_event: Duration,
    response_id: Option<String>,
    response_model: Option<String>,
}

impl LlmStream {
    pub(crate) fn new(
        pipeline: Pipeline,
        prefix: Vec<StreamEvent>,
        deadline: Instant,
        attempts: u32,
        time_to_first_event: Duration,
    ) -> Self {
        let response_id = pipeline.response_id().map(str::to_owned);
        let response_model = pipeline.response_model().map(str::to_owned);
        LlmStream {
            prefix: prefix.into(),
            inner: Some(Box::pin(pipeline.into_stream())),
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            attempts,
            time_to_first_event,
            response_id,
            response_model,
        }
    }

    /// How many requests the call took: 1 + retries.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// From the `stream()` call to the first content event (retries included).
    pub fn time_to_first_event(&self) -> Duration {
        self.time_to_first_event
    }

    /// `msg_…` / `chatcmpl-…`, from `message_start` or the first chunk.
    pub fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }

    /// The model that answers, from `message_start` or the first chunk.
    pub fn response_model(&self) -> Option<&str> {
        self.response_model.as_deref()
    }
}

impl fmt::Debug for LlmStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmStream")
            .field("attempts", &self.attempts)
            .field("time_to_first_event", &self.time_to_first_event)
            .field("response_id", &self.response_id)
            .field("response_model", &self.response_model)
            .field("open", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

impl Stream for LlmStream {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(event) = this.prefix.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let expired = || Poll::Ready(Some(Err(LlmError::Timeout(TimeoutPhase::Total))));
        if Instant::now() >= this.deadline {
            this.inner = None;
            return expired();
        }
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.inner = None;
                    expired()
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
