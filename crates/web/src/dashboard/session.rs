//! Dashboard sign-in state: the session cookie (the admin token itself, HttpOnly, SameSite=Strict, Secure when the
//! request came over HTTPS), the [`Admin`] extractor that sends signed-out visitors to the login page, and CSRF
//! protection of every state-changing form.
//!
//! CSRF: each form carries a token derived from the session token (SHA-256 of a label and the token), so a page on
//! another origin can neither read nor compute it; the check is constant time. Posts whose `Origin` names another
//! host are refused before that, which also covers the login form (there is no session yet to derive from).

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use mentorfy_auth::{AdminIdentity, AuthError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::page::PageError;
use crate::admin_auth::AdminAuth;
use crate::state::AppState;

/// The session cookie's name. Its value is the admin token (a local admin JWT or a Supabase access token).
pub const COOKIE: &str = "mentorfy_session";
/// The form field and the htmx header that carry the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token bound to a session token.
pub fn csrf_token(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"mentorfy-dashboard-csrf\0");
    hasher.update(session_token.as_bytes());
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Whether the request reached us over HTTPS (directly or through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")))
}

/// `Set-Cookie` for a new session lasting `max_age_secs`.
pub fn set_session_cookie(token: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("mentorfy_session=; Max-Age=0"))
}

/// `Set-Cookie` that ends the session.
pub fn clear_session_cookie(secure: bool) -> HeaderValue {
    if secure {
        HeaderValue::from_static("mentorfy_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure")
    } else {
        HeaderValue::from_static("mentorfy_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }
}

/// `host:443` over https and `host:80` over http are `host`.
fn without_default_port(authority: &str, scheme: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    match (scheme, authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host.to_owned(),
        _ => authority,
    }
}

/// Refuses a cross-site post: an `Origin` (or, without one, a `Referer`) naming another host than the request's
/// `Host` or, behind a reverse proxy that rewrites it, `X-Forwarded-Host`.
pub fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let source = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)).and_then(|v| v.to_str().ok());
    let Some(source) = source else { return Ok(()) };
    let (scheme, rest) = source.split_once("://").unwrap_or(("", ""));
    let authority = without_default_port(rest.split('/').next().unwrap_or_default(), scheme);
    let header_host = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(|h| without_default_port(h.trim(), scheme))
    };
    let ours = [header_host("host"), header_host("x-forwarded-host")];
    if source == "null" || authority.is_empty() || !ours.iter().flatten().any(|h| *h == authority) {
        return Err(PageError::new(StatusCode::FORBIDDEN, "This form was posted from another site and was refused."));
    }
    Ok(())
}

/// A signed-in admin on a dashboard page. Signed-out visitors are sent to the login page (htmx requests get an
/// `HX-Redirect`), and come back to where they were after signing in.
#[derive(Debug, Clone)]
pub struct Admin {
    pub identity: AdminIdentity,
    /// The CSRF token every form of this session must carry.
    pub csrf: String,
}

impl Admin {
    /// The API extractor's value, so pages call the API handlers and show exactly what the API returns.
    pub fn api(&self) -> AdminAuth {
        AdminAuth(self.identity.clone())
    }

    /// Checks a posted CSRF token (form field or header).
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), PageError> {
        let ok = presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())));
        if ok {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "This form has expired or did not come from this dashboard. Reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        // Back to where the admin was after signing in; a form post cannot be replayed, so it goes to the overview.
        let next = if parts.method == axum::http::Method::GET {
            parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default()
        } else {
            String::new()
        };
        let Some(token) = cookie(&parts.headers, COOKIE).filter(|t| !t.is_empty()) else {
            return Err(PageError::SignIn { next });
        };
        match state.admin().verifier.verify(token).await {
            Ok(identity) => Ok(Admin { identity, csrf: csrf_token(token) }),
            Err(AuthError::InvalidToken(_)) => Err(PageError::SignIn { next }),
            Err(AuthError::Forbidden(_)) => {
                Err(PageError::new(StatusCode::FORBIDDEN, "This account is not an admin of this Mentorfy."))
            }
            Err(other) => Err(PageError::from(crate::error::AppError::from(other))),
        }
    }
}

/// A posted form (`application/x-www-form-urlencoded`) from a signed-in admin whose CSRF token and origin were
/// checked. Fields keep their order and may repeat (bulk actions post one `id` per row).
pub struct Form {
    pub admin: Admin,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// Largest form body accepted.
const FORM_LIMIT: usize = 256 * 1024;

impl FromRequest<AppState> for Form {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        same_origin(&parts.headers)?;
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "This form is too large."))?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "This form could not be read."))?;
        let header = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let field = fields.iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.as_str());
        admin.check_csrf(field.or(header))?;
        Ok(Form { admin, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let a = csrf_token("token-a");
        assert_eq!(a, csrf_token("token-a"));
        assert_ne!(a, csrf_token("token-b"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; mentorfy_session=tok; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("localhost:8080"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://localhost:8080"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(same_origin(&h).is_err());
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(same_origin(&h).is_err());
        // Behind a proxy that rewrites Host, the forwarded host counts; default ports are the same origin.
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert("x-forwarded-host", HeaderValue::from_static("mentorfy.example.com"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://mentorfy.example.com:443"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(same_origin(&h).is_err());
    }

    #[test]
    fn session_cookies_are_http_only_strict_and_secure_over_https() {
        let c = set_session_cookie("t", 60, true);
        let c = c.to_str().unwrap_or_default();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"), "{c}");
        let c = set_session_cookie("t", 60, false);
        assert!(!c.to_str().unwrap_or_default().contains("Secure"));
    }
}
