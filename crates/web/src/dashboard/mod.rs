//! The admin dashboard: server-rendered HTML (askama) with htmx for partial updates, embedded assets, cookie
//! sessions with CSRF protection and a strict Content-Security-Policy. Pages read through the same functions as
//! the admin API, so the dashboard shows exactly what the API returns; it holds no SQL and no business rules.
//!
//! Convention (kanidm's): a page handler renders the whole page; when the request comes from htmx
//! (`HX-Request`), it renders only the fragment being replaced.

pub mod assets;
pub mod chart;
pub mod fmt;
pub mod page;
pub mod session;

mod conversations;
mod failures;
mod llm_calls;
mod mentor_sessions;
mod overview;
mod patterns;
mod playground;
mod settings;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::admin_auth::client_ip;
use crate::state::AppState;
use page::{Layout, PageError, render};
use session::{Admin, clear_session_cookie, cookie, is_https, same_origin, set_session_cookie};

/// Every dashboard route, with the security headers.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(overview::page))
        .route("/dashboard/", get(|| async { Redirect::permanent("/dashboard") }))
        .route("/dashboard/login", get(login_page).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/assets/{name}", get(assets::serve))
        .route("/dashboard/conversations", get(conversations::list))
        .route("/dashboard/conversations/{id}", get(conversations::detail))
        .route("/dashboard/views", post(conversations::save_view))
        .route("/dashboard/views/{id}/delete", post(conversations::delete_view))
        .route("/dashboard/failures/{id}/status", post(conversations::set_failure_status))
        .route("/dashboard/failures", get(failures::list))
        .route("/dashboard/failures/bulk", post(failures::bulk))
        .route("/dashboard/patterns", get(patterns::page))
        .route("/dashboard/llm-calls", get(llm_calls::list))
        .route("/dashboard/llm-calls/{id}", get(llm_calls::detail))
        .route("/dashboard/settings", get(settings::show))
        .route("/dashboard/settings/alerts", post(settings::save_alerts))
        .route("/dashboard/settings/test-alert", post(settings::test_alert))
        .route("/dashboard/settings/keys", post(settings::create_key))
        .route("/dashboard/settings/keys/{id}/revoke", post(settings::revoke_key))
        .route("/dashboard/sessions", get(mentor_sessions::list))
        .route("/dashboard/sessions/export.csv", get(mentor_sessions::export_csv))
        .route("/dashboard/playground", get(playground::page))
        .layer(middleware::from_fn(page::security_headers))
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    email: String,
    error: Option<String>,
    supabase: bool,
}

/// Where to go after signing in: a dashboard path only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/dashboard")
                && !n.contains("://")
                && !n.chars().any(|c| c.is_control() || c == '\\')
                && !n.to_ascii_lowercase().contains("%0d")
                && !n.to_ascii_lowercase().contains("%0a") =>
        {
            n.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

fn login_form(state: &AppState, next: String, email: String, error: Option<String>) -> LoginPage {
    LoginPage {
        layout: Layout::public("Sign in"),
        next,
        email,
        error,
        supabase: state.config().admin.supabase_url.is_some() || state.config().admin.supabase_jwt_secret.is_some(),
    }
}

/// `GET /dashboard/login`: the sign-in form; an admin already signed in goes straight on.
async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(q.next.as_deref());
    if let Some(token) = cookie(&headers, session::COOKIE)
        && state.admin().verifier.verify(token).await.is_ok()
    {
        return Ok(Redirect::to(&next).into_response());
    }
    render(&login_form(&state, next, String::new(), None))
}

/// `POST /dashboard/login`: email and password of a local admin, or a Supabase access token. Rate limited like the
/// API's login; one message for an unknown email and a wrong password.
async fn login(State(state): State<AppState>, req: axum::extract::Request) -> Result<Response, PageError> {
    let (parts, body) = req.into_parts();
    same_origin(&parts.headers)?;
    let bytes = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map_err(|_| PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "This form is too large."))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "This form could not be read."))?;
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned());
    let next = safe_next(field("next").as_deref());
    let email = field("email").unwrap_or_default();
    let secure = is_https(&parts.headers);
    let ttl = i64::try_from(state.config().admin.token_ttl.as_secs()).unwrap_or(3600);

    let token = if let Some(access_token) = field("access_token").filter(|t| !t.is_empty()) {
        match state.admin().verifier.verify(&access_token).await {
            Ok(_) => access_token,
            Err(e) => {
                let page = login_form(&state, next, email, Some(format!("That token was refused: {e}")));
                let mut response = render(&page)?;
                *response.status_mut() = StatusCode::UNAUTHORIZED;
                return Ok(response);
            }
        }
    } else {
        let password = fields.iter().find(|(k, _)| k == "password").map(|(_, v)| v.as_str()).unwrap_or_default();
        match state.admin().login(state.store(), &email, password, client_ip(&parts)).await {
            Ok(issued) => issued.token,
            Err(e) => {
                let status = e.status;
                let page = login_form(&state, next, email, Some(e.message));
                let mut response = render(&page)?;
                *response.status_mut() = status;
                return Ok(response);
            }
        }
    };
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(header::SET_COOKIE, set_session_cookie(&token, ttl, secure));
    Ok(response)
}

/// `POST /dashboard/logout`: ends the session (the cookie is cleared; CSRF-checked so other sites cannot sign
/// people out).
async fn logout(headers: HeaderMap, form: session::Form) -> Response {
    let _: &Admin = &form.admin;
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().insert(header::SET_COOKIE, clear_session_cookie(is_https(&headers)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(safe_next(Some("/dashboard/conversations?x=1")), "/dashboard/conversations?x=1");
        assert_eq!(safe_next(Some("https://evil.example/dashboard")), "/dashboard");
        assert_eq!(safe_next(Some("//evil.example")), "/dashboard");
        assert_eq!(safe_next(None), "/dashboard");
        assert_eq!(safe_next(Some("/dashboard%0d%0aSet-Cookie:x=1")), "/dashboard");
    }
}
