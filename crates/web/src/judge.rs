//! Wiring of Sensei's optional LLM judge to the LLM gateway: each judge call is traced like every other model
//! call (an `llm_calls` row with tokens, cost and latency, and an exported `chat` span), under the conversation it
//! judges.

use std::time::Instant;

use mentorfy_llm::{ChatRequest, Gateway, Message, ProviderKind};
use mentorfy_mentor::{CallEnd, CallLog, TraceScope, Tracer};
use mentorfy_sensei::judge::{JudgeCall, JudgeFailure, JudgeFuture, JudgeModel, JudgeReply};
use time::OffsetDateTime;

/// The agent id the judge's calls are recorded under.
pub const JUDGE_AGENT_ID: &str = "sensei-judge";
/// Longest verdict the judge may write.
const MAX_TOKENS: u32 = 400;

#[derive(Clone)]
pub struct TracedJudge {
    pub gateway: Gateway,
    pub tracer: Tracer,
    pub provider: ProviderKind,
    pub model: String,
}

impl std::fmt::Debug for TracedJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedJudge").field("provider", &self.provider).field("model", &self.model).finish()
    }
}

impl JudgeModel for TracedJudge {
    fn evaluator(&self) -> String {
        format!("llm:{}/{}", self.provider, self.model)
    }

    fn call(&self, call: JudgeCall) -> JudgeFuture<'_> {
        Box::pin(async move {
            let request = ChatRequest {
                model: self.model.clone(),
                system: Some(call.system),
                messages: vec![Message::user(call.user)],
                tools: Vec::new(),
                temperature: None,
                max_tokens: MAX_TOKENS,
            };
            let mut scope = TraceScope::new("evaluate", call.conversation_key, JUDGE_AGENT_ID.to_owned());
            scope.conversation_id = Some(call.conversation_id);
            scope.agent_id = Some(JUDGE_AGENT_ID.to_owned());
            let (started_at, started) = (OffsetDateTime::now_utc(), Instant::now());
            let result = self.gateway.complete(self.provider, &request).await;
            let end = match &result {
                Ok(c) => CallEnd::Ok(c.clone()),
                Err(e) => CallEnd::Failed { partial: None, error_type: e.error_type(), message: e.to_string() },
            };
            let settings = self.gateway.provider(self.provider);
            let log = CallLog {
                provider: self.provider,
                provider_name: settings.map(|p| p.name.clone()).unwrap_or_else(|| self.provider.to_string()),
                base_url: settings.map(|p| p.base_url.clone()).unwrap_or_default(),
                request,
                stream: false,
                started_at,
                started,
                ttft: None,
                attempts: 1,
                end,
            };
            let recorded = self.tracer.record_call(&scope, log).await;
            match result {
                Ok(c) => Ok(JudgeReply { text: c.text(), llm_call_id: Some(recorded.id), response_id: c.response_id }),
                Err(e) => Err(JudgeFailure {
                    error_type: e.error_type(),
                    message: e.public_message(),
                    llm_call_id: Some(recorded.id),
                    retryable: e.retryable(),
                }),
            }
        })
    }
}
