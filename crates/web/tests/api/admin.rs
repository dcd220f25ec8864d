//! Admin sign-in and project API keys over HTTP (issue 5): local logins and their rate limit, every way a bearer
//! token is refused, Supabase HS256 and JWKS tokens with the admin allowlist, and the API key lifecycle.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mentorfy_auth::api_key::Pepper;
use mentorfy_fakes::clerk::{ClerkKeys, unsigned_token};
use mentorfy_fakes::supabase::{FakeSupabase, SupabaseEcKey, access_token};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use mentorfy_web::admin_auth::{ApiKeyService, server_secrets};
use serde_json::{Value, json};

both_backends!(
    login_issues_a_token_that_opens_the_admin_api,
    wrong_password_and_unknown_email_get_the_same_401,
    login_is_rate_limited_per_email_with_retry_after,
    admin_routes_refuse_missing_garbage_unsigned_forged_expired_and_wrong_audience_tokens,
    supabase_hs256_tokens_are_accepted_and_the_allowlist_gives_403,
    supabase_jwks_rs256_tokens_are_accepted_and_api_key_jwts_refused,
    supabase_jwks_es256_tokens_are_accepted_and_unknown_kids_refetch_the_jwks,
    api_key_is_shown_once_verifies_and_stops_working_when_revoked,
    bad_api_key_requests_get_error_envelopes,
    api_key_auth_extractor_takes_bearer_or_x_api_key_and_refuses_revoked_keys,
);

const EMAIL: &str = "Ada@Example.com";
const PASSWORD: &str = "correct horse battery staple";
const SUPABASE_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
const SUPABASE_URL: &str = "https://proj.supabase.co";

async fn with_admin(app: &TestApp) {
    let hash = mentorfy_auth::password::hash_password(PASSWORD).unwrap();
    app.store.create_admin(EMAIL, &hash).await.unwrap();
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/login", &json!({"email": email, "password": password})).await
}

async fn token(app: &TestApp) -> String {
    let body = expect_json(login(app, EMAIL, PASSWORD).await, 200).await;
    body["token"].as_str().unwrap().to_owned()
}

async fn list_keys(app: &TestApp, bearer: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(app.url("/api/v1/api-keys"));
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    req.send().await.unwrap()
}

async fn create_key(app: &TestApp, bearer: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/api/v1/api-keys")).bearer_auth(bearer).json(body).send().await.unwrap()
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
}

async fn expect_401(res: reqwest::Response) -> Value {
    assert_eq!(res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    expect_error(res, 401, "unauthorized").await
}

async fn login_issues_a_token_that_opens_the_admin_api(db: TestDb) {
    let app = TestApp::spawn(db).await;
    with_admin(&app).await;
    // Email is matched case-insensitively.
    let body = expect_json(login(&app, "ada@example.COM", PASSWORD).await, 200).await;
    let token = body["token"].as_str().unwrap();
    let expires = time::OffsetDateTime::parse(
        body["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_12h = time::OffsetDateTime::now_utc() + time::Duration::hours(12);
    assert!((expires - in_12h).abs() < time::Duration::minutes(1), "{expires}");
    let list = expect_json(list_keys(&app, Some(token)).await, 200).await;
    assert_eq!(list, json!({"keys": []}));
    let admin = app.store.find_admin_by_email(EMAIL).await.unwrap().unwrap();
    assert!(admin.last_login_at.is_some());
}

async fn wrong_password_and_unknown_email_get_the_same_401(db: TestDb) {
    let app = TestApp::spawn(db).await;
    with_admin(&app).await;
    let wrong = expect_401(login(&app, EMAIL, "not the password at all").await).await;
    let unknown = expect_401(login(&app, "nobody@example.com", PASSWORD).await).await;
    assert_eq!(wrong, unknown);
}

async fn login_is_rate_limited_per_email_with_retry_after(db: TestDb) {
    let app = TestApp::spawn_with(db, &[("MENTORFY_LOGIN_RATE_LIMIT", "3/15m")]).await;
    with_admin(&app).await;
    for _ in 0..3 {
        expect_401(login(&app, EMAIL, "wrong password, again").await).await;
    }
    // Even the right password is refused while limited.
    let res = login(&app, EMAIL, PASSWORD).await;
    let retry: u64 = res.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    expect_error(res, 429, "rate_limited").await;
    // Per IP too: every attempt came from 127.0.0.1, so another email is limited as well.
    expect_error(login(&app, "other@example.com", PASSWORD).await, 429, "rate_limited").await;
}

async fn admin_routes_refuse_missing_garbage_unsigned_forged_expired_and_wrong_audience_tokens(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let secret = server_secrets(&app.store).await.unwrap().admin_jwt_secret;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |aud: &str, exp: i64| {
        json!({"iss": mentorfy_auth::LOCAL_ISSUER, "aud": aud, "sub": uuid::Uuid::now_v7().to_string(),
               "email": "ada@example.com", "role": "authenticated", "iat": now, "exp": exp})
    };
    // The real secret with good claims works, so each refusal below is about the one thing changed.
    expect_json(list_keys(&app, Some(&hs256(secret.as_bytes(), &claims("authenticated", now + 600)))).await, 200).await;

    expect_401(list_keys(&app, None).await).await;
    expect_401(list_keys(&app, Some("garbage")).await).await;
    let none = unsigned_token(&json!({"alg": "none", "typ": "JWT"}), &claims("authenticated", now + 600));
    expect_401(list_keys(&app, Some(&none)).await).await;
    let forged = hs256(b"not-the-server-secret-but-long-enough-to-sign", &claims("authenticated", now + 600));
    let err = expect_401(list_keys(&app, Some(&forged)).await).await;
    assert!(err["message"].as_str().unwrap().contains("signature"), "{err}");
    let expired = hs256(secret.as_bytes(), &claims("authenticated", now - 120));
    let err = expect_401(list_keys(&app, Some(&expired)).await).await;
    assert!(err["message"].as_str().unwrap().contains("expired"), "{err}");
    let wrong_aud = hs256(secret.as_bytes(), &claims("anon", now + 600));
    let err = expect_401(list_keys(&app, Some(&wrong_aud)).await).await;
    assert!(err["message"].as_str().unwrap().contains("aud"), "{err}");
    // Algorithm confusion: an RS256 token claiming the local issuer is refused.
    let rs = ClerkKeys::primary().sign(&claims("authenticated", now + 600));
    expect_401(list_keys(&app, Some(&rs)).await).await;
    // A Basic header is not a bearer token.
    let res = app.client.get(app.url("/api/v1/api-keys")).basic_auth("a", Some("b")).send().await.unwrap();
    expect_401(res).await;
}

async fn supabase_hs256_tokens_are_accepted_and_the_allowlist_gives_403(db: TestDb) {
    let app = TestApp::spawn_with(
        db,
        &[
            ("SUPABASE_URL", SUPABASE_URL),
            ("SUPABASE_JWT_SECRET", SUPABASE_SECRET),
            ("SENSEI_ADMIN_EMAILS", "boss@example.com, Ops@Example.com"),
        ],
    )
    .await;
    let user = uuid::Uuid::new_v4().to_string();
    let allowed = hs256(SUPABASE_SECRET.as_bytes(), &access_token(SUPABASE_URL, &user, "ops@example.com"));
    expect_json(list_keys(&app, Some(&allowed)).await, 200).await;
    let created = expect_json(create_key(&app, &allowed, &json!({"name": "from supabase"})).await, 201).await;
    assert_eq!(created["name"], "from supabase");

    let outsider = hs256(SUPABASE_SECRET.as_bytes(), &access_token(SUPABASE_URL, &user, "eve@example.com"));
    expect_error(list_keys(&app, Some(&outsider)).await, 403, "forbidden").await;

    let mut other_project = access_token("https://other.supabase.co", &user, "ops@example.com");
    let token = hs256(SUPABASE_SECRET.as_bytes(), &other_project);
    expect_401(list_keys(&app, Some(&token)).await).await;
    other_project["iss"] = json!(format!("{SUPABASE_URL}/auth/v1"));
    other_project["role"] = json!("service_role");
    let token = hs256(SUPABASE_SECRET.as_bytes(), &other_project);
    expect_401(list_keys(&app, Some(&token)).await).await;
}

async fn supabase_jwks_rs256_tokens_are_accepted_and_api_key_jwts_refused(db: TestDb) {
    let keys = ClerkKeys::primary();
    let supabase = FakeSupabase::start(vec![keys.jwk()]).await.unwrap();
    let url = supabase.project_url();
    let app = TestApp::spawn_with(db, &[("SUPABASE_URL", &url)]).await;
    let user = uuid::Uuid::new_v4().to_string();
    let token = keys.sign(&access_token(&url, &user, "anyone@example.com"));
    expect_json(list_keys(&app, Some(&token)).await, 200).await;
    expect_json(list_keys(&app, Some(&token)).await, 200).await;
    assert_eq!(supabase.fetch_count(), 1, "the JWKS is cached");

    // Signed by a key the JWKS does not hold.
    let stranger = ClerkKeys::other().sign(&access_token(&url, &user, "anyone@example.com"));
    expect_401(list_keys(&app, Some(&stranger)).await).await;
    // HS256 is never accepted once the project uses asymmetric keys, whatever the secret.
    let hs = hs256(b"guessable-secret-guessable-secret-guessable", &access_token(&url, &user, "a@example.com"));
    expect_401(list_keys(&app, Some(&hs)).await).await;
    // The legacy anon key shape: no sub, no aud.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let anon = keys.sign(&json!({"iss": "supabase", "ref": "proj", "role": "anon", "iat": now, "exp": now + 3600}));
    expect_401(list_keys(&app, Some(&anon)).await).await;
    let mut anonymous_user = access_token(&url, &user, "");
    anonymous_user["is_anonymous"] = json!(true);
    expect_401(list_keys(&app, Some(&keys.sign(&anonymous_user))).await).await;
}

async fn supabase_jwks_es256_tokens_are_accepted_and_unknown_kids_refetch_the_jwks(db: TestDb) {
    // Starts with only the RSA key: the EC key is "rotated in" later.
    let supabase = FakeSupabase::start(vec![ClerkKeys::primary().jwk()]).await.unwrap();
    let url = supabase.project_url();
    let app = TestApp::spawn_with(db, &[("SUPABASE_URL", &url)]).await;
    let user = uuid::Uuid::new_v4().to_string();
    let es = SupabaseEcKey.sign(&access_token(&url, &user, "anyone@example.com"));
    expect_401(list_keys(&app, Some(&es)).await).await;
    assert_eq!(supabase.fetch_count(), 1);
    supabase.set_keys(vec![ClerkKeys::primary().jwk(), SupabaseEcKey.jwk()]);
    // The unknown kid was refetched moments ago: the 10 s rate limit holds, so still refused without a fetch.
    expect_401(list_keys(&app, Some(&es)).await).await;
    assert_eq!(supabase.fetch_count(), 1, "refetches are rate limited");
    // A fresh app (fresh cache) sees the rotated set and accepts ES256.
    drop(app);
    let db = TestDb::create(mentorfy_test_support::Backend::Sqlite).await.unwrap();
    let app = TestApp::spawn_with(db, &[("SUPABASE_URL", &url)]).await;
    expect_json(list_keys(&app, Some(&es)).await, 200).await;
    // An ES256 token whose header claims RS256 under the EC key id is refused (no algorithm confusion).
    let mut parts: Vec<String> = es.split('.').map(str::to_owned).collect();
    parts[0] = base64_url(&json!({"alg": "RS256", "typ": "JWT", "kid": SupabaseEcKey::KID}).to_string());
    expect_401(list_keys(&app, Some(&parts.join("."))).await).await;
}

fn base64_url(text: &str) -> String {
    // The `unsigned_token` helper encodes header and claims; reuse it and keep the header part.
    unsigned_token(&serde_json::from_str::<Value>(text).unwrap(), &json!({})).split('.').next().unwrap().to_owned()
}

async fn api_key_is_shown_once_verifies_and_stops_working_when_revoked(db: TestDb) {
    let app = TestApp::spawn(db).await;
    with_admin(&app).await;
    let bearer = token(&app).await;
    let created =
        expect_json(create_key(&app, &bearer, &json!({"name": "ingest", "environment": "staging"})).await, 201).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk_sensei_") && key.starts_with(created["prefix"].as_str().unwrap()), "{created}");
    assert_eq!(created["environment"], "staging");
    assert!(created["revokedAt"].is_null() && created["lastUsedAt"].is_null());

    let list = expect_json(list_keys(&app, Some(&bearer)).await, 200).await;
    let listed = &list["keys"][0];
    assert_eq!(listed["id"], created["id"]);
    assert!(listed.get("key").is_none(), "{list}");
    assert!(!list.to_string().contains(&key[created["prefix"].as_str().unwrap().len() + 1..]), "secret listed");

    // The verification service behind `ApiKeyAuth`, with the server's own pepper.
    let secrets = server_secrets(&app.store).await.unwrap();
    let service = ApiKeyService::new(app.store.clone(), Pepper::new(secrets.api_key_pepper.into_bytes()).unwrap());
    let verified = service.verify(&key).await.unwrap();
    assert_eq!(verified.id.to_string(), created["id"].as_str().unwrap());
    assert_eq!(verified.environment, "staging");
    let mut typo = key.clone();
    typo.pop();
    typo.push(if key.ends_with('A') { 'B' } else { 'A' });
    assert!(service.verify(&typo).await.is_err());
    // A well-formed key with a valid checksum that was never issued.
    let never = mentorfy_auth::api_key::generate_key().full;
    assert!(service.verify(&never).await.is_err());
    // last_used_at is recorded off the request path.
    let mut used = false;
    for _ in 0..50 {
        let row = app.store.find_api_key_by_prefix(&verified.prefix).await.unwrap().unwrap();
        if row.last_used_at.is_some() {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used, "last_used_at recorded");

    let id = created["id"].as_str().unwrap();
    let res = app.client.delete(app.url(&format!("/api/v1/api-keys/{id}"))).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    assert!(service.verify(&key).await.is_err(), "revocation takes effect at once");
    let list = expect_json(list_keys(&app, Some(&bearer)).await, 200).await;
    assert!(list["keys"][0]["revokedAt"].is_string(), "{list}");
    // Revoking again is fine; an unknown id is 404.
    let res = app.client.delete(app.url(&format!("/api/v1/api-keys/{id}"))).bearer_auth(&bearer).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let unknown = uuid::Uuid::now_v7();
    let res =
        app.client.delete(app.url(&format!("/api/v1/api-keys/{unknown}"))).bearer_auth(&bearer).send().await.unwrap();
    expect_error(res, 404, "not_found").await;
    let res = app.client.delete(app.url("/api/v1/api-keys/not-a-uuid")).bearer_auth(&bearer).send().await.unwrap();
    expect_error(res, 404, "not_found").await;
}

async fn bad_api_key_requests_get_error_envelopes(db: TestDb) {
    let app = TestApp::spawn(db).await;
    with_admin(&app).await;
    let bearer = token(&app).await;
    let err = expect_error(create_key(&app, &bearer, &json!({})).await, 400, "invalid_field").await;
    assert_eq!(err["details"]["field"], "name", "{err}");
    let long = "x".repeat(101);
    let err = expect_error(create_key(&app, &bearer, &json!({"name": long})).await, 400, "invalid_field").await;
    assert_eq!(err["details"]["field"], "name", "{err}");
    let err =
        expect_error(create_key(&app, &bearer, &json!({"name": "a", "scope": "all"})).await, 400, "invalid_field")
            .await;
    assert_eq!(err["details"]["field"], "scope", "{err}");
    let err = expect_error(
        create_key(&app, &bearer, &json!({"name": "a", "environment": "Prod!"})).await,
        400,
        "invalid_field",
    )
    .await;
    assert_eq!(err["details"]["field"], "environment", "{err}");
    // Without a token, the body is never looked at.
    let res = app.client.post(app.url("/api/v1/api-keys")).json(&json!({"name": "a"})).send().await.unwrap();
    expect_401(res).await;
    let res = app.post_json("/api/v1/auth/login", &json!({"email": "a@example.com"})).await;
    expect_error(res, 400, "invalid_field").await;
}

async fn api_key_auth_extractor_takes_bearer_or_x_api_key_and_refuses_revoked_keys(db: TestDb) {
    use axum::body::Body;
    use axum::http::Request;
    use mentorfy_web::admin_auth::ApiKeyAuth;
    use tower::ServiceExt as _;

    let url = db.url.clone();
    let config = mentorfy_core::Config::from_sources(None, move |name| match name {
        "DATABASE_URL" => Some(url.clone()),
        _ => None,
    })
    .unwrap();
    let state = mentorfy_web::prepare(std::sync::Arc::new(config)).await.unwrap();
    let created = state.admin().api_keys.create("probe", Some("test"), None).await.unwrap();
    let router = axum::Router::new()
        .route(
            "/probe",
            axum::routing::get(|ApiKeyAuth(key): ApiKeyAuth| async move { format!("{} {}", key.id, key.environment) }),
        )
        .with_state(state.clone());
    let call = |header: Option<(&'static str, String)>| {
        let router = router.clone();
        async move {
            let mut req = Request::get("/probe");
            if let Some((name, value)) = header {
                req = req.header(name, value);
            }
            let res = router.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let expected = format!("{} test", created.row.id);
    assert_eq!(call(Some(("authorization", format!("Bearer {}", created.key)))).await, (200, expected.clone()));
    assert_eq!(call(Some(("x-api-key", created.key.clone()))).await, (200, expected));
    let (status, missing) = call(None).await;
    assert_eq!(status, 401, "{missing}");
    // Malformed and unknown keys get one body.
    let (status, malformed) = call(Some(("x-api-key", "sk_sensei_nope".to_owned()))).await;
    assert_eq!(status, 401);
    let never = mentorfy_auth::api_key::generate_key().full;
    let (status, unknown) = call(Some(("x-api-key", never))).await;
    assert_eq!((status, &unknown), (401, &malformed));
    assert!(unknown.contains("invalid API key"), "{unknown}");
    state.admin().api_keys.revoke(created.row.id).await.unwrap();
    let (status, revoked) = call(Some(("x-api-key", created.key.clone()))).await;
    assert_eq!((status, &revoked), (401, &malformed), "revocation applies to the next request");
}
