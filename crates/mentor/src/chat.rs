//! Chat and generations: the agent turn. Chat validates, stores the user's message in the session's Sensei
//! conversation, builds the prompt (rendered system template, recent transcript from storage, the new message),
//! and streams the model's answer as [`ChatEvent`]s — running server-side tools between steps — from a task
//! that outlives the client: when the client goes, the upstream call is dropped and what was produced is
//! stored, marked `aborted`. Generations are one non-streamed call over the session's fresh `context`.
//!
//! Errors before the first event are returned (the server answers with a JSON error); after it, they become
//! an [`ChatEvent::Error`] followed by the finish events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mentorfy_core::{OrgRegistry, Session, SessionId};
use mentorfy_llm::{
    ChatRequest, Completion, Content, FinishReason, Gateway, LlmError, LlmStream, Message, Role, StreamEvent,
    ToolInput, Usage,
};
use mentorfy_store::{InsertOutcome, NewConversation, NewJob, NewMessage, Store};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::agents::{Agent, AgentKind, Agents};
use crate::error::MentorError;
use crate::memory::MemoryService;
use crate::template::PromptVars;
use crate::tools::{ToolContext, ToolRegistry};
use crate::trace::{CallEnd, CallLog, Recorded, TraceScope, Tracer};

/// `conversations.source` of Mentor's own chats.
pub const MENTOR_SOURCE: &str = "mentorfy";
/// The environment of Mentor's own conversations (ingested ones carry their sender's).
pub const MENTOR_ENVIRONMENT: &str = "production";
/// Longest user message accepted, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// Longest a tool may run before its call is answered with an error.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// One event of a streamed turn, in the order the AI SDK UI message stream needs them.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatEvent {
    Start {
        message_id: String,
    },
    StepStart,
    TextStart {
        id: String,
    },
    TextDelta {
        id: String,
        delta: String,
    },
    TextEnd {
        id: String,
    },
    ReasoningStart {
        id: String,
    },
    ReasoningDelta {
        id: String,
        delta: String,
        signature: Option<String>,
    },
    ReasoningEnd {
        id: String,
    },
    ToolInputStart {
        call_id: String,
        name: String,
    },
    ToolInputDelta {
        call_id: String,
        delta: String,
    },
    ToolInputAvailable {
        call_id: String,
        name: String,
        input: Value,
    },
    ToolInputError {
        call_id: String,
        name: String,
        input: String,
        error: String,
    },
    ToolOutput {
        call_id: String,
        output: Value,
    },
    ToolOutputError {
        call_id: String,
        error: String,
    },
    StepFinish,
    /// Shown to the user: never upstream bodies, stack traces or keys.
    Error {
        text: String,
    },
    /// The last event. `metadata` holds usage and cost (no nulls).
    Finish {
        reason: FinishReason,
        metadata: Map<String, Value>,
    },
}

/// What `/api/chat` asks for, already parsed from either body shape.
#[derive(Clone, Debug)]
pub struct ChatInput {
    pub session_id: SessionId,
    pub agent_id: String,
    pub message: String,
    /// The client's id for the user message (a `UIMessage.id`); a re-sent id is stored once.
    pub user_message_id: Option<String>,
    /// On regenerate: the assistant message being replaced, left out of the transcript from now on.
    pub replaces_message_id: Option<String>,
}

/// A started turn: the assistant message id and its events (the first ones are already queued).
pub struct ChatTurn {
    pub message_id: String,
    pub events: mpsc::Receiver<ChatEvent>,
}

/// A generation's result.
#[derive(Clone, Debug)]
pub struct Generation {
    pub content: String,
    pub agent_id: String,
    pub model: String,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub trace_id: String,
}

#[derive(Clone)]
pub struct ChatService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    orgs: Arc<OrgRegistry>,
    gateway: Gateway,
    agents: Agents,
    tools: ToolRegistry,
    tracer: Tracer,
    history_turns: u32,
    memory: MemoryService,
    /// Wakes this process's workers after a turn enqueued its memory job.
    jobs: Option<mentorfy_jobs::Jobs>,
}

impl ChatService {
    #[allow(clippy::too_many_arguments)] // the services a chat turn uses, wired once in `prepare`
    pub fn new(
        store: Store,
        orgs: Arc<OrgRegistry>,
        gateway: Gateway,
        agents: Agents,
        tools: ToolRegistry,
        tracer: Tracer,
        history_turns: u32,
        memory: MemoryService,
        jobs: Option<mentorfy_jobs::Jobs>,
    ) -> Self {
        Self { inner: Arc::new(Inner { store, orgs, gateway, agents, tools, tracer, history_turns, memory, jobs }) }
    }

    pub fn memory(&self) -> &MemoryService {
        &self.inner.memory
    }

    pub fn agents(&self) -> &Agents {
        &self.inner.agents
    }

    pub fn tracer(&self) -> &Tracer {
        &self.inner.tracer
    }

    /// Starts a chat turn. Returns once the model's first event has arrived (or with the error that prevented it).
    pub async fn chat(&self, input: ChatInput) -> Result<ChatTurn, MentorError> {
        let inner = &self.inner;
        let message = input.message.trim();
        if message.is_empty() {
            return Err(MentorError::invalid("message", "must contain some text"));
        }
        if message.contains('\0') {
            return Err(MentorError::invalid("message", "must not contain NUL characters"));
        }
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(MentorError::invalid("message", format!("is longer than {MAX_MESSAGE_BYTES} bytes")));
        }
        let session = load_session(&inner.store, input.session_id).await?;
        let agent = inner
            .agents
            .get(&input.agent_id)
            .ok_or_else(|| MentorError::NotFound(format!("no agent '{}'", input.agent_id)))?
            .clone();
        if agent.kind != AgentKind::Chat {
            return Err(MentorError::invalid(
                "agentId",
                format!(
                    "'{}' is a {} agent; use POST /api/generate/{}",
                    agent.id,
                    agent.kind.as_str(),
                    agent.kind.as_str()
                ),
            ));
        }
        if agent.org != session.org_id {
            return Err(MentorError::NotFound(format!("no agent '{}' for this session's organisation", agent.id)));
        }
        require_provider(&inner.gateway, &agent)?;

        let conversation = inner
            .store
            .upsert_conversation(NewConversation {
                source: MENTOR_SOURCE,
                environment: MENTOR_ENVIRONMENT,
                external_id: &session.id.to_string(),
                org_id: Some(session.org_id.as_str()),
                agent_id: Some(&agent.id),
                user_id: session.clerk_user_id.as_deref(),
                metadata: json!({}),
            })
            .await?;
        if let Some(old) = &input.replaces_message_id {
            inner.store.set_message_status_by_external_id(conversation.id, old, "superseded").await?;
        }
        let now = mentorfy_store::now();
        let user_external = input.user_message_id.clone().unwrap_or_else(|| format!("msg_{}", Uuid::new_v4().simple()));
        let outcome = inner
            .store
            .insert_message(NewMessage {
                id: Uuid::now_v7(),
                conversation_id: conversation.id,
                external_id: Some(&user_external),
                role: "user",
                content: message,
                status: "complete",
                finish_reason: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                ttft_ms: None,
                metadata: json!({}),
                created_at: now,
            })
            .await?;
        if outcome == InsertOutcome::Duplicate {
            tracing::debug!(message = %user_external, "user message already stored (re-sent); answering it again");
        }

        // The new message plus the last N turns (a turn is a user message and its answer).
        let limit = inner.history_turns.saturating_mul(2).saturating_add(1);
        // What the person saw counts, partial answers included; superseded (regenerated) answers do not.
        let rows = inner.store.recent_messages(conversation.id, limit, &["complete", "aborted", "error"]).await?;
        let mut transcript: Vec<(Role, String)> = rows
            .into_iter()
            .filter_map(|r| match r.role.as_str() {
                "user" => Some((Role::User, r.content)),
                "assistant" => Some((Role::Assistant, r.content)),
                _ => None,
            })
            .collect();
        // The newest message must be this one even if an equal, older re-send was found instead.
        if transcript.last().is_none_or(|(role, text)| *role != Role::User || text != message) {
            transcript.push((Role::User, message.to_owned()));
        }
        let request = ChatRequest {
            model: agent.model.clone(),
            system: Some(self.system_prompt(&agent, &session, self.recall(&agent, &session, message).await)),
            messages: alternate(transcript),
            tools: agent.tool_specs(&inner.tools),
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
        };

        let message_uuid = Uuid::now_v7();
        let mut scope = scope_for(&session, &agent, "chat");
        scope.conversation_id = Some(conversation.id);
        scope.message_id = Some(message_uuid);
        let turn_started_at = OffsetDateTime::now_utc();
        let turn_started = Instant::now();

        let first = self.open_stream(&scope, &agent, &request).await;
        let first = match first {
            Ok(s) => s,
            Err(e) => {
                inner.tracer.record_turn(&scope, turn_started_at, turn_started.elapsed(), Some(&e.error_type()));
                return Err(e.into());
            }
        };

        let message_id = format!("msg_{}", Uuid::new_v4().simple());
        let (tx, rx) = mpsc::channel(256);
        let run = Run {
            service: self.clone(),
            agent,
            ctx: ToolContext {
                session_id: session.id,
                org_id: session.org_id.clone(),
                context: session.context.clone(),
            },
            scope,
            conversation_id: conversation.id,
            message_uuid,
            message_id: message_id.clone(),
            tx,
            turn_started_at,
            turn_started,
        };
        tokio::spawn(run.drive(request, first));
        Ok(ChatTurn { message_id, events: rx })
    }

    /// One non-streamed generation (`diagnosis`, `summary`, …) from the session's current `context`.
    pub async fn generate(&self, session_id: SessionId, kind: &str) -> Result<Generation, MentorError> {
        let inner = &self.inner;
        let session = load_session(&inner.store, session_id).await?;
        let agent = inner
            .agents
            .generation(&session.org_id, kind)
            .ok_or_else(|| {
                MentorError::NotFound(format!("no '{kind}' generation for organisation '{}'", session.org_id))
            })?
            .clone();
        require_provider(&inner.gateway, &agent)?;
        let mut scope = scope_for(&session, &agent, "generate");
        if let Some(conv) = inner
            .store
            .find_conversation(MENTOR_SOURCE, MENTOR_ENVIRONMENT, &session.id.to_string())
            .await
            .ok()
            .flatten()
        {
            scope.conversation_id = Some(conv.id);
        }
        let ctx =
            ToolContext { session_id: session.id, org_id: session.org_id.clone(), context: session.context.clone() };
        let mut request = ChatRequest {
            model: agent.model.clone(),
            system: Some(self.system_prompt(&agent, &session, self.recall(&agent, &session, kind).await)),
            messages: vec![Message::user(format!("Write the {kind} now."))],
            tools: agent.tool_specs(&inner.tools),
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
        };
        let started_at = OffsetDateTime::now_utc();
        let started = Instant::now();
        let mut usage = Usage::default();
        let mut cost = Some(0.0);
        let mut steps = 0;
        let content = loop {
            steps += 1;
            let call_started_at = OffsetDateTime::now_utc();
            let call_started = Instant::now();
            let result = inner.gateway.complete(agent.provider, &request).await;
            let end = match &result {
                Ok(c) => CallEnd::Ok(c.clone()),
                Err(e) => CallEnd::Failed { partial: None, error_type: e.error_type(), message: e.to_string() },
            };
            let recorded = inner
                .tracer
                .record_call(
                    &scope,
                    self.call_log(&agent, &request, false, call_started_at, call_started, None, 1, end),
                )
                .await;
            let completion = match result {
                Ok(c) => c,
                Err(e) => {
                    inner.tracer.record_turn(&scope, started_at, started.elapsed(), Some(&e.error_type()));
                    return Err(e.into());
                }
            };
            usage = usage + recorded.usage;
            cost = add_cost(cost, recorded.cost_usd);
            if completion.finish_reason == FinishReason::ToolCalls && steps < agent.max_steps {
                let results = self.run_tools(&scope, &agent, &ctx, &completion, |_| {}).await;
                request.messages.push(completion.message.clone());
                request.messages.push(Message { role: Role::User, content: results });
                continue;
            }
            break completion.text();
        };
        inner.tracer.record_turn(&scope, started_at, started.elapsed(), None);
        Ok(Generation {
            content,
            agent_id: agent.id.clone(),
            model: agent.model.clone(),
            usage,
            cost_usd: cost,
            trace_id: mentorfy_otlp::hex(&scope.trace_id),
        })
    }

    /// The memories most relevant to `query` (the user's message), when the agent's prompt shows memories.
    async fn recall(&self, agent: &Agent, session: &Session, query: &str) -> Vec<String> {
        if !agent.system.variables().any(|v| v == "memories") {
            return Vec::new();
        }
        self.inner.memory.recall_for_prompt(session, query).await
    }

    fn system_prompt(&self, agent: &Agent, session: &Session, memories: Vec<String>) -> String {
        let org = self.inner.orgs.get(session.org_id.as_str()).map(|o| o.name.clone());
        let today = OffsetDateTime::now_utc().date();
        agent.system.render(&PromptVars {
            name: session.name.clone(),
            context: session.context.clone(),
            memories,
            org: org.unwrap_or_else(|| session.org_id.to_string()),
            today: format!("{:04}-{:02}-{:02}", today.year(), u8::from(today.month()), today.day()),
        })
    }

    /// Opens a streamed call; a failure before the first event is recorded as a failed call.
    async fn open_stream(
        &self,
        scope: &TraceScope,
        agent: &Agent,
        request: &ChatRequest,
    ) -> Result<LlmStream, LlmError> {
        let started_at = OffsetDateTime::now_utc();
        let started = Instant::now();
        match self.inner.gateway.stream(agent.provider, request).await {
            Ok(s) => Ok(s),
            Err(e) => {
                let end = CallEnd::Failed { partial: None, error_type: e.error_type(), message: e.to_string() };
                let log = self.call_log(agent, request, true, started_at, started, None, 1, end);
                self.inner.tracer.record_call(scope, log).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call_log(
        &self,
        agent: &Agent,
        request: &ChatRequest,
        stream: bool,
        started_at: OffsetDateTime,
        started: Instant,
        ttft: Option<Duration>,
        attempts: u32,
        end: CallEnd,
    ) -> CallLog {
        let settings = self.inner.gateway.provider(agent.provider);
        CallLog {
            provider: agent.provider,
            provider_name: settings.map(|p| p.name.clone()).unwrap_or_else(|| agent.provider.to_string()),
            base_url: settings.map(|p| p.base_url.clone()).unwrap_or_default(),
            request: request.clone(),
            stream,
            started_at,
            started,
            ttft,
            attempts,
            end,
        }
    }

    /// Runs the tool calls of a step, in order; every call gets a result (an error result when the input did
    /// not parse, the tool is not the agent's, it fails or it times out). `emit` sees each outcome.
    async fn run_tools(
        &self,
        scope: &TraceScope,
        agent: &Agent,
        ctx: &ToolContext,
        completion: &Completion,
        mut emit: impl FnMut(ChatEvent),
    ) -> Vec<Content> {
        let mut results = Vec::new();
        for (call_id, name, input) in completion.tool_calls() {
            let started_at = OffsetDateTime::now_utc();
            let started = Instant::now();
            let result = if !agent.tools.iter().any(|t| t == name) {
                Err(format!("there is no tool named '{name}'"))
            } else if let Value::String(raw) = input {
                Err(format!("the tool input is not valid JSON: {}", truncate(raw, 200)))
            } else {
                match self.inner.tools.get(name) {
                    None => Err(format!("there is no tool named '{name}'")),
                    Some(tool) => match tokio::time::timeout(TOOL_TIMEOUT, tool.call(input.clone(), ctx.clone())).await
                    {
                        Ok(r) => r,
                        Err(_) => Err(format!("the tool did not answer within {} s", TOOL_TIMEOUT.as_secs())),
                    },
                }
            };
            self.inner.tracer.record_tool(scope, name, call_id, input, &result, started_at, started.elapsed());
            match &result {
                Ok(v) => emit(ChatEvent::ToolOutput { call_id: call_id.to_owned(), output: v.clone() }),
                Err(e) => emit(ChatEvent::ToolOutputError { call_id: call_id.to_owned(), error: e.clone() }),
            }
            let (output, is_error) = match result {
                Ok(v) => (v.to_string(), false),
                Err(e) => (e, true),
            };
            results.push(Content::ToolResult { call_id: call_id.to_owned(), output, is_error });
        }
        results
    }
}

/// The background half of a chat turn.
struct Run {
    service: ChatService,
    agent: Agent,
    ctx: ToolContext,
    scope: TraceScope,
    conversation_id: Uuid,
    message_uuid: Uuid,
    message_id: String,
    tx: mpsc::Sender<ChatEvent>,
    turn_started_at: OffsetDateTime,
    turn_started: Instant,
}

/// How a step's stream ended.
enum StepEnd {
    Finished(Completion),
    Failed(LlmError),
    Aborted,
}

/// What the turn produced so far, for storage.
#[derive(Default)]
struct Produced {
    text: String,
    tool_calls: Vec<Value>,
    usage: Usage,
    cost: Option<f64>,
    ttft: Option<Duration>,
    call_ids: Vec<String>,
}

impl Run {
    async fn send(&self, event: ChatEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }

    async fn drive(self, mut request: ChatRequest, first: LlmStream) {
        let mut produced = Produced { cost: Some(0.0), ..Produced::default() };
        let mut stream = Some(first);
        let mut step: u32 = 0;
        let mut call_started_at = OffsetDateTime::now_utc();
        let mut call_started = self.turn_started;
        let mut alive = self.send(ChatEvent::Start { message_id: self.message_id.clone() }).await
            && self.send(ChatEvent::StepStart).await;
        let (status, reason) = loop {
            step += 1;
            let Some(mut upstream) = stream.take() else { break ("error", FinishReason::Error) };
            let ttft = upstream.time_to_first_event();
            produced.ttft.get_or_insert(ttft);
            let mut partial = Vec::<Content>::new();
            let mut step_text = String::new();
            let end =
                if alive { self.pump(&mut upstream, &mut partial, &mut step_text).await } else { StepEnd::Aborted };
            let attempts = upstream.attempts();
            drop(upstream);
            let step_started_text = !produced.text.is_empty() && !step_text.is_empty();
            if step_started_text {
                produced.text.push_str("\n\n");
            }
            produced.text.push_str(&step_text);

            let call_end = match &end {
                StepEnd::Finished(c) => CallEnd::Ok(c.clone()),
                StepEnd::Failed(e) => CallEnd::Failed {
                    partial: Some(Message { role: Role::Assistant, content: partial.clone() }),
                    error_type: e.error_type(),
                    message: e.to_string(),
                },
                StepEnd::Aborted => {
                    CallEnd::Aborted { partial: Message { role: Role::Assistant, content: partial.clone() } }
                }
            };
            let log = self.service.call_log(
                &self.agent,
                &request,
                true,
                call_started_at,
                call_started,
                Some(ttft),
                attempts,
                call_end,
            );
            let recorded: Recorded = self.service.inner.tracer.record_call(&self.scope, log).await;
            produced.usage = produced.usage + recorded.usage;
            produced.cost = add_cost(produced.cost, recorded.cost_usd);
            produced.call_ids.push(recorded.id.to_string());

            match end {
                StepEnd::Aborted => break ("aborted", FinishReason::Other),
                StepEnd::Failed(e) => {
                    tracing::warn!(error = %e, agent = %self.agent.id, "chat stream failed after it started");
                    let _ = self.send(ChatEvent::Error { text: e.public_message() }).await;
                    let _ = self.send(ChatEvent::StepFinish).await;
                    break ("error", FinishReason::Error);
                }
                StepEnd::Finished(completion) => {
                    let wants_tools =
                        completion.finish_reason == FinishReason::ToolCalls && completion.tool_calls().next().is_some();
                    if !wants_tools {
                        alive = self.send(ChatEvent::StepFinish).await;
                        break (if alive { "complete" } else { "aborted" }, completion.finish_reason);
                    }
                    let mut events = Vec::new();
                    let results = if step < self.agent.max_steps {
                        self.service
                            .run_tools(&self.scope, &self.agent, &self.ctx, &completion, |e| events.push(e))
                            .await
                    } else {
                        let mut out = Vec::new();
                        for (call_id, _, _) in completion.tool_calls() {
                            let error = format!("the agent may use at most {} steps per turn", self.agent.max_steps);
                            events
                                .push(ChatEvent::ToolOutputError { call_id: call_id.to_owned(), error: error.clone() });
                            out.push(Content::ToolResult {
                                call_id: call_id.to_owned(),
                                output: error,
                                is_error: true,
                            });
                        }
                        out
                    };
                    for ((call_id, name, input), result) in completion.tool_calls().zip(&results) {
                        let mut record = json!({"id": call_id, "name": name, "input": input});
                        if let Content::ToolResult { output, is_error, .. } = result {
                            record[if *is_error { "error" } else { "output" }] = Value::from(output.clone());
                        }
                        produced.tool_calls.push(record);
                    }
                    for e in events {
                        alive = alive && self.send(e).await;
                    }
                    alive = alive && self.send(ChatEvent::StepFinish).await;
                    if !alive {
                        break ("aborted", FinishReason::Other);
                    }
                    if step >= self.agent.max_steps {
                        break ("complete", FinishReason::Other);
                    }
                    request.messages.push(completion.message.clone());
                    request.messages.push(Message { role: Role::User, content: results });
                    if !self.send(ChatEvent::StepStart).await {
                        break ("aborted", FinishReason::Other);
                    }
                    call_started_at = OffsetDateTime::now_utc();
                    call_started = Instant::now();
                    match self.service.open_stream(&self.scope, &self.agent, &request).await {
                        Ok(s) => stream = Some(s),
                        Err(e) => {
                            let _ = self.send(ChatEvent::Error { text: e.public_message() }).await;
                            let _ = self.send(ChatEvent::StepFinish).await;
                            break ("error", FinishReason::Error);
                        }
                    }
                }
            }
        };
        if status != "aborted" {
            let _ = self.send(ChatEvent::Finish { reason, metadata: self.metadata(&produced) }).await;
        }
        self.store_answer(&produced, status, reason).await;
        let error = (status == "error").then_some("error");
        self.service.inner.tracer.record_turn(&self.scope, self.turn_started_at, self.turn_started.elapsed(), error);
    }

    /// Forwards one step's events until it finishes, fails, or the client goes away.
    async fn pump(&self, upstream: &mut LlmStream, partial: &mut Vec<Content>, text: &mut String) -> StepEnd {
        loop {
            let next = tokio::select! {
                _ = self.tx.closed() => return StepEnd::Aborted,
                next = upstream.next() => next,
            };
            let event = match next {
                None => return StepEnd::Failed(LlmError::Protocol("the stream ended before the call finished".into())),
                Some(Err(e)) => return StepEnd::Failed(e),
                Some(Ok(event)) => event,
            };
            let out = match event {
                StreamEvent::Finish(completion) => return StepEnd::Finished(completion),
                StreamEvent::TextStart { block } => {
                    partial.push(Content::Text { text: String::new() });
                    ChatEvent::TextStart { id: block.to_string() }
                }
                StreamEvent::TextDelta { block, text: delta } => {
                    text.push_str(&delta);
                    if let Some(Content::Text { text }) = partial.last_mut() {
                        text.push_str(&delta);
                    }
                    ChatEvent::TextDelta { id: block.to_string(), delta }
                }
                StreamEvent::TextEnd { block } => ChatEvent::TextEnd { id: block.to_string() },
                StreamEvent::ReasoningStart { block } => ChatEvent::ReasoningStart { id: format!("r{block}") },
                StreamEvent::ReasoningDelta { block, text } => {
                    ChatEvent::ReasoningDelta { id: format!("r{block}"), delta: text, signature: None }
                }
                StreamEvent::ReasoningSignature { block, signature } => ChatEvent::ReasoningDelta {
                    id: format!("r{block}"),
                    delta: String::new(),
                    signature: Some(signature),
                },
                StreamEvent::ReasoningEnd { block } => ChatEvent::ReasoningEnd { id: format!("r{block}") },
                StreamEvent::ToolCallStart { id, name, .. } => ChatEvent::ToolInputStart { call_id: id, name },
                StreamEvent::ToolCallDelta { id, json, .. } => ChatEvent::ToolInputDelta { call_id: id, delta: json },
                StreamEvent::ToolCallEnd { id, name, input, .. } => match input {
                    ToolInput::Parsed(input) => {
                        partial.push(Content::ToolCall { id: id.clone(), name: name.clone(), input: input.clone() });
                        ChatEvent::ToolInputAvailable { call_id: id, name, input }
                    }
                    ToolInput::Invalid { raw, error } => {
                        ChatEvent::ToolInputError { call_id: id, name, input: raw, error }
                    }
                },
            };
            if self.tx.send(out).await.is_err() {
                return StepEnd::Aborted;
            }
        }
    }

    fn metadata(&self, produced: &Produced) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("model".into(), Value::from(self.agent.model.clone()));
        if let Some(v) = produced.usage.input_tokens {
            m.insert("inputTokens".into(), Value::from(v));
        }
        if let Some(v) = produced.usage.output_tokens {
            m.insert("outputTokens".into(), Value::from(v));
        }
        if let Some(v) = produced.usage.cache_read_tokens {
            m.insert("cacheReadTokens".into(), Value::from(v));
        }
        if let Some(cost) = produced.cost.filter(|c| c.is_finite()) {
            m.insert("costUsd".into(), Value::from(cost));
        }
        m
    }

    async fn store_answer(&self, produced: &Produced, status: &str, reason: FinishReason) {
        let latency = self.turn_started.elapsed();
        let mut metadata = json!({
            "agentId": self.agent.id,
            "model": self.agent.model,
            "llmCallIds": produced.call_ids,
            "traceId": mentorfy_otlp::hex(&self.scope.trace_id),
        });
        if !produced.tool_calls.is_empty() {
            metadata["toolCalls"] = Value::from(produced.tool_calls.clone());
        }
        if let Some(cost) = produced.cost {
            metadata["costUsd"] = Value::from(cost);
        }
        if let Some(v) = produced.usage.cache_read_tokens {
            metadata["cacheReadTokens"] = Value::from(v);
        }
        if let Some(v) = produced.usage.cache_write_tokens {
            metadata["cacheWriteTokens"] = Value::from(v);
        }
        let to_i64 = |v: Option<u64>| v.and_then(|n| i64::try_from(n).ok());
        // What the person saw becomes a memory of this turn, enqueued with the answer itself.
        let remember = (status == "complete" || status == "aborted") && !produced.text.trim().is_empty();
        let jobs: Vec<NewJob> = remember
            .then(|| {
                NewJob::new(
                    crate::jobs::MEMORY_QUEUE,
                    crate::jobs::WRITE_TURN,
                    json!({
                        "sessionId": self.ctx.session_id.to_string(),
                        "conversationId": self.conversation_id.to_string(),
                        "messageId": self.message_uuid.to_string(),
                    }),
                )
            })
            .into_iter()
            .collect();
        metadata["agentName"] = Value::from(self.agent.name.clone());
        let result = self
            .service
            .inner
            .store
            .insert_message_and_enqueue(
                NewMessage {
                    id: self.message_uuid,
                    conversation_id: self.conversation_id,
                    external_id: Some(&self.message_id),
                    role: "assistant",
                    content: &produced.text,
                    status,
                    finish_reason: Some(if status == "aborted" { "aborted" } else { reason.as_str() }),
                    input_tokens: to_i64(produced.usage.input_tokens),
                    output_tokens: to_i64(produced.usage.output_tokens),
                    latency_ms: i64::try_from(latency.as_millis()).ok(),
                    ttft_ms: produced.ttft.and_then(|t| i64::try_from(t.as_millis()).ok()),
                    metadata,
                    created_at: mentorfy_store::now(),
                },
                &jobs,
            )
            .await;
        match result {
            Ok(InsertOutcome::Inserted) if !jobs.is_empty() => {
                if let Some(j) = &self.service.inner.jobs {
                    j.notify();
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, message = %self.message_id, "could not store the assistant message"),
        }
    }
}

async fn load_session(store: &Store, id: SessionId) -> Result<Session, MentorError> {
    store.get_session(id).await?.ok_or_else(|| MentorError::NotFound(format!("no session {id}")))
}

fn require_provider(gateway: &Gateway, agent: &Agent) -> Result<(), MentorError> {
    if gateway.provider(agent.provider).is_none() {
        return Err(LlmError::NotConfigured { provider: agent.provider }.into());
    }
    Ok(())
}

fn scope_for(session: &Session, agent: &Agent, operation: &'static str) -> TraceScope {
    let key = session.id.to_string();
    let user = session.clerk_user_id.clone().unwrap_or_else(|| key.clone());
    let mut scope = TraceScope::new(operation, key, user);
    scope.session_id = Some(session.id.as_uuid());
    scope.org_id = Some(session.org_id.to_string());
    scope.agent_id = Some(agent.id.clone());
    scope
}

fn add_cost(total: Option<f64>, call: Option<f64>) -> Option<f64> {
    Some(total? + call?)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Turns the stored transcript into alternating turns starting with the user: consecutive messages of one
/// role are joined, and anything before the first user message is dropped.
fn alternate(transcript: Vec<(Role, String)>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    for (role, text) in transcript {
        if text.trim().is_empty() || (out.is_empty() && role != Role::User) {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.role == role => {
                if let Some(Content::Text { text: prev }) = last.content.last_mut() {
                    prev.push_str("\n\n");
                    prev.push_str(&text);
                }
            }
            _ => out.push(Message { role, content: vec![Content::Text { text }] }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcripts_alternate_and_start_with_the_user() {
        let t = vec![
            (Role::Assistant, "welcome".to_owned()),
            (Role::User, "a".to_owned()),
            (Role::User, "b".to_owned()),
            (Role::Assistant, "".to_owned()),
            (Role::Assistant, "c".to_owned()),
            (Role::User, "d".to_owned()),
        ];
        let m = alternate(t);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].role, Role::User);
        assert_eq!(m[0].text(), "a\n\nb");
        assert_eq!(m[1].text(), "c");
        assert_eq!(m[2].text(), "d");
    }

    #[test]
    fn an_unknown_cost_makes_the_total_unknown() {
        assert_eq!(add_cost(Some(0.5), Some(0.25)), Some(0.75));
        assert_eq!(add_cost(Some(0.5), None), None);
        assert_eq!(add_cost(None, Some(1.0)), None);
    }
}
