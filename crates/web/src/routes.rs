//! Route declarations only: which path goes to which handler, and the OpenAPI document built from them.

use axum::Router;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::extract::DefaultBodyLimit;

use crate::api::session_report;
use crate::api::{
    admin, analytics, chat, conversations, health, ingest, llm_calls, memories, saved_views, sessions, settings,
};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mentorfy API",
        description = "Mentor sessions, chat and generations, and Sensei conversation intelligence. Every error is \
                       `{\"error\":{\"code\",\"message\",\"details\"}}` with the matching HTTP status; every response \
                       carries `x-request-id`.",
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "sessions", description = "Mentor's anonymous sessions"),
        (name = "chat", description = "Agents: streamed chat in the AI SDK UI message stream format, and generations"),
        (name = "ingest", description = "Sensei ingestion with a project API key (Bearer sk_sensei_… or x-api-key): the track API, SDK batches and OTLP traces; rate limited per key"),
        (name = "conversations", description = "Sensei's read API for admins: conversations with filters and cursor pagination, their messages, health and failures, and failure triage"),
        (name = "analytics", description = "Sensei analytics for admins: period summary and trend, usage patterns, failure trends"),
        (name = "llm calls", description = "Every traced model call: filters, full input and output, and per agent and model latency, tokens and cost"),
        (name = "mentor funnel", description = "Mentor sessions for admins: the funnel of a period (created, in progress, completed, abandoned, linked, with contact) and its leads, as JSON pages or a CSV export"),
        (name = "saved views", description = "Named filters of a dashboard page"),
        (name = "settings", description = "Alert settings: the Slack webhook (write-only, shown masked), thresholds, and a test alert"),
        (name = "admin", description = "Admin sign-in and project API keys (Bearer: a local admin token or a Supabase access token)"),
        (name = "health", description = "Probes for load balancers and orchestrators"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "clerk",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A Clerk session token (RS256)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A local admin token (POST /api/v1/auth/login) or a Supabase access token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A project API key sk_sensei_… (also accepted in x-api-key)"))
                    .build(),
            ),
        );
    }
}

/// All API routes and the OpenAPI document describing them.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::get_healthz))
        .routes(routes!(health::get_readyz))
        .routes(routes!(sessions::create_session))
        .routes(routes!(sessions::get_session, sessions::patch_session))
        .routes(routes!(sessions::complete_session))
        .routes(routes!(sessions::link_session))
        .routes(routes!(memories::list_memories))
        .routes({
            let (schemas, paths, method) = routes!(chat::chat);
            (schemas, paths, method.layer(DefaultBodyLimit::max(chat::CHAT_BODY_LIMIT)))
        })
        .routes(routes!(chat::generate))
        .routes(routes!(chat::list_agents))
        .routes(routes!(admin::login))
        .routes(routes!(admin::create_api_key, admin::list_api_keys))
        .routes(routes!(admin::revoke_api_key))
        .routes(routes!(conversations::list_conversations))
        .routes(routes!(conversations::list_conversation_messages))
        .routes(routes!(conversations::get_conversation_health))
        .routes(routes!(conversations::list_conversation_failures))
        .routes(routes!(conversations::patch_failure))
        .routes(routes!(crate::api::failures::list_failures))
        .routes(routes!(analytics::get_summary))
        .routes(routes!(analytics::get_patterns))
        .routes(routes!(analytics::get_failure_trends))
        .routes(routes!(analytics::get_health_trends))
        .routes(routes!(llm_calls::list_llm_calls))
        .routes(routes!(llm_calls::get_llm_call))
        .routes(routes!(session_report::list_sessions_report))
        .routes(routes!(saved_views::create_saved_view, saved_views::list_saved_views))
        .routes(routes!(saved_views::update_saved_view, saved_views::delete_saved_view))
        .routes(routes!(settings::get_settings, settings::put_settings))
        .routes(routes!(settings::test_alert))
        // Ingestion reads its bodies with its own limits (LimitedBody), so axum's default one is lifted there.
        .routes({
            let (schemas, paths, method) = routes!(ingest::track);
            (schemas, paths, method.layer(DefaultBodyLimit::disable()))
        })
        .routes({
            let (schemas, paths, method) = routes!(ingest::ingest);
            (schemas, paths, method.layer(DefaultBodyLimit::disable()))
        })
        .routes({
            let (schemas, paths, method) = routes!(ingest::otel_traces);
            (schemas, paths, method.layer(DefaultBodyLimit::disable()))
        })
        .split_for_parts()
}
