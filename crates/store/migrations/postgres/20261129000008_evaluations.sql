-- Conversation evaluations (issue 6): the optional LLM judge's verdicts, shaped like the OpenTelemetry
-- `gen_ai.evaluation.result` event (name, score value and label, explanation, error.type when it failed).
-- One row per conversation and evaluation name: a re-judged conversation (reopened, final again) replaces it.

CREATE TABLE evaluations (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- gen_ai.evaluation.name, e.g. 'conversation_quality'.
    name            TEXT NOT NULL CHECK (name <> ''),
    -- gen_ai.evaluation.score.value, 0..1 (NULL when the evaluation failed).
    score_value     DOUBLE PRECISION CHECK (score_value BETWEEN 0 AND 1),
    -- gen_ai.evaluation.score.label: 'pass', 'fail' or 'mixed'.
    score_label     TEXT,
    -- gen_ai.evaluation.explanation: the judge's short rationale.
    explanation     TEXT,
    -- error.type when the evaluation itself failed (the model errored or answered in the wrong shape).
    error_type      TEXT,
    -- Who judged: 'llm:<provider>/<model>'.
    evaluator       TEXT NOT NULL CHECK (evaluator <> ''),
    -- The traced call (llm_calls.id; not a foreign key, like the log's own ids) and the provider's response id.
    llm_call_id     UUID,
    response_id     TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    CHECK ((score_value IS NULL) = (error_type IS NOT NULL)),
    UNIQUE (conversation_id, name)
);
