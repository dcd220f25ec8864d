//! What every dashboard page shares: the layout's data (navigation, the signed-in admin, the CSRF token), rendering
//! a template into a response, the HTML error page, and the security headers (a strict Content-Security-Policy:
//! scripts, styles and connections from this origin only, no inline script or style, no framing).

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::assets;
use super::session::Admin;
use crate::error::AppError;

/// The pages of the navigation, in order: (path, label).
pub const NAV: [(&str, &str); 8] = [
    ("/dashboard", "Overview"),
    ("/dashboard/conversations", "Conversations"),
    ("/dashboard/failures", "Failures"),
    ("/dashboard/patterns", "Patterns"),
    ("/dashboard/sessions", "Mentor sessions"),
    ("/dashboard/llm-calls", "LLM calls"),
    ("/dashboard/playground", "Playground"),
    ("/dashboard/settings", "Settings"),
];

/// One navigation link.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The layout's data: every page template has a `layout` field of this type.
pub struct Layout {
    pub title: String,
    pub nav: Vec<NavItem>,
    /// The signed-in admin's email (or subject), shown in the header.
    pub who: String,
    pub csrf: String,
    /// The JSON of the `hx-headers` attribute that sends the CSRF token with every htmx request.
    pub hx_headers: String,
    pub css: String,
    pub htmx: String,
    pub app_js: String,
}

impl Layout {
    /// The layout of a page at `active` (a path of [`NAV`]) titled `title`.
    pub fn new(admin: &Admin, active: &str, title: impl Into<String>) -> Self {
        Layout {
            title: title.into(),
            nav: NAV.iter().map(|(href, label)| NavItem { href, label, current: *href == active }).collect(),
            who: admin.identity.email.clone().unwrap_or_else(|| admin.identity.subject.to_string()),
            csrf: admin.csrf.clone(),
            hx_headers: format!(r#"{{"x-csrf-token":"{}"}}"#, admin.csrf),
            css: assets::url("app.css"),
            htmx: assets::url("htmx-2.0.11.min.js"),
            app_js: assets::url("app.js"),
        }
    }

    /// The layout of a signed-out page (login, errors).
    pub fn public(title: impl Into<String>) -> Self {
        Layout {
            title: title.into(),
            nav: Vec::new(),
            who: String::new(),
            csrf: String::new(),
            hx_headers: "{}".to_owned(),
            css: assets::url("app.css"),
            htmx: assets::url("htmx-2.0.11.min.js"),
            app_js: assets::url("app.js"),
        }
    }
}

/// Whether this is an htmx request (which gets the fragment, not the whole page).
pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request") && !headers.contains_key("hx-history-restore-request")
}

/// Renders a template as an HTML response.
pub fn render<T: Template>(template: &T) -> Result<Response, PageError> {
    let html = template.render().map_err(|e| PageError::from(AppError::internal(format!("template: {e}"))))?;
    Ok(Html(html).into_response())
}

/// A dashboard failure, shown as an HTML page (or fragment) instead of the API's JSON envelope.
#[derive(Debug)]
pub enum PageError {
    /// Not signed in: go to the login page, then back to `next`.
    SignIn { next: String },
    /// Anything else: a status and a sentence for the admin.
    Show { status: StatusCode, message: String },
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError::Show { status, message: message.into() }
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        if e.status.is_server_error()
            && let Some(detail) = &e.internal
        {
            tracing::error!(code = e.code, detail = %detail, "dashboard error");
        }
        let message = if e.status == StatusCode::BAD_REQUEST {
            let field = e.details.get("field").and_then(|f| f.as_str()).map(|f| format!(" ({f})")).unwrap_or_default();
            format!("{}{field}", e.message)
        } else {
            e.message
        };
        PageError::Show { status: e.status, message }
    }
}

#[derive(Template)]
#[template(path = "dashboard/error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn { next } => {
                let target = if next.starts_with("/dashboard") && !next.starts_with("/dashboard/login") {
                    format!("/dashboard/login?next={}", urlencode(&next))
                } else {
                    "/dashboard/login".to_owned()
                };
                let mut response = Redirect::to(&target).into_response();
                if let Ok(value) = HeaderValue::from_str(&target) {
                    // htmx follows HX-Redirect with a full page load instead of swapping the login page in.
                    response.headers_mut().insert("hx-redirect", value);
                }
                response
            }
            PageError::Show { status, message } => {
                let page = ErrorPage { layout: Layout::public("Error"), status: status.as_u16(), message };
                let body = page.render().unwrap_or_else(|_| "error".to_owned());
                (status, Html(body)).into_response()
            }
        }
    }
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The Content-Security-Policy of every dashboard response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                       base-uri 'none'";

/// Adds the security headers to every dashboard response and keeps pages out of shared caches.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(urlencode("/dashboard/conversations?q=a b&x=1"), "/dashboard/conversations%3Fq%3Da%20b%26x%3D1");
    }
}
