//! Behaviour of Clerk session-token verification against the fake Clerk (committed test keys, local JWKS server);
//! never reaches the internet.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

use std::error::Error;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mentorfy_auth::{AuthError, ClerkClaims, ClerkSettings, ClerkVerifier};
use mentorfy_fakes::clerk::{
    ClerkKeys, FakeJwksServer, TEST_AUTHORIZED_PARTY, TEST_ISSUER, session_token, unsigned_token,
};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn Error>>;

fn http() -> Result<reqwest::Client, Box<dyn Error>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().build()?)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn pem_settings() -> ClerkSettings {
    ClerkSettings {
        jwt_key_pem: Some(ClerkKeys::primary().public_pem().to_owned()),
        issuer: Some(TEST_ISSUER.to_owned()),
        authorized_parties: vec![TEST_AUTHORIZED_PARTY.to_owned()],
        ..ClerkSettings::default()
    }
}

fn pem_verifier() -> Result<ClerkVerifier, Box<dyn Error>> {
    Ok(ClerkVerifier::new(pem_settings(), http()?)?)
}

fn jwks_settings(server: &FakeJwksServer, min_refetch_interval: Duration) -> ClerkSettings {
    ClerkSettings {
        jwks_url: Some(server.jwks_url()),
        issuer: Some(TEST_ISSUER.to_owned()),
        authorized_parties: vec![TEST_AUTHORIZED_PARTY.to_owned()],
        jwks_min_refetch_interval: min_refetch_interval,
        ..ClerkSettings::default()
    }
}

fn jwks_verifier(server: &FakeJwksServer, min_refetch_interval: Duration) -> Result<ClerkVerifier, Box<dyn Error>> {
    Ok(ClerkVerifier::new(jwks_settings(server, min_refetch_interval), http()?)?)
}

fn primary_token_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = session_token("user_123");
    edit(&mut claims);
    ClerkKeys::primary().sign(&claims)
}

/// Asserts `token` is refused as invalid, without the token (or any of its segments) in the message; returns it.
async fn rejection(verifier: &ClerkVerifier, token: &str) -> Result<String, Box<dyn Error>> {
    match verifier.verify(token).await {
        Err(error @ AuthError::InvalidToken(_)) => {
            let message = error.to_string();
            // Short strings like "a.b" may occur in any message by chance; real tokens are long.
            if token.len() > 16 {
                assert!(!message.contains(token), "message echoes the token: {message}");
            }
            for segment in token.split('.').filter(|s| s.len() > 8) {
                assert!(!message.contains(segment), "message echoes a token segment: {message}");
            }
            Ok(message)
        }
        other => Err(format!("expected InvalidToken, got {other:?}").into()),
    }
}

async fn accepted(verifier: &ClerkVerifier, token: &str) -> Result<ClerkClaims, Box<dyn Error>> {
    Ok(verifier.verify(token).await?)
}

// ---- PEM (networkless) mode ----------------------------------------------------------------------------------------

#[tokio::test]
async fn pem_token_with_valid_claims_is_accepted_with_its_sub_and_sid() -> TestResult {
    let verifier = pem_verifier()?;
    let claims = session_token("user_123");
    let claims_out = accepted(&verifier, &ClerkKeys::primary().sign(&claims)).await?;
    assert_eq!(claims_out.sub, "user_123");
    assert_eq!(Some(claims_out.sid.as_str()), claims["sid"].as_str());
    assert!(claims_out.sid.starts_with("sess_"));
    assert_eq!(claims_out.azp.as_deref(), Some(TEST_AUTHORIZED_PARTY));
    assert_eq!(claims_out.iss.as_deref(), Some(TEST_ISSUER));
    Ok(())
}

#[tokio::test]
async fn pem_key_with_escaped_newlines_from_an_env_file_is_accepted() -> TestResult {
    let settings = ClerkSettings {
        jwt_key_pem: Some(ClerkKeys::primary().public_pem().trim().replace('\n', "\\n")),
        ..pem_settings()
    };
    let verifier = ClerkVerifier::new(settings, http()?)?;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    Ok(())
}

#[tokio::test]
async fn token_expired_ten_seconds_ago_is_rejected() -> TestResult {
    let token = primary_token_with(|c| {
        c["iat"] = json!(now() - 70);
        c["nbf"] = json!(now() - 71);
        c["exp"] = json!(now() - 10);
    });
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("expired"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_expired_three_seconds_ago_is_accepted_within_leeway() -> TestResult {
    let token = primary_token_with(|c| {
        c["iat"] = json!(now() - 63);
        c["nbf"] = json!(now() - 64);
        c["exp"] = json!(now() - 3);
    });
    accepted(&pem_verifier()?, &token).await?;
    Ok(())
}

#[tokio::test]
async fn token_not_valid_before_ten_seconds_from_now_is_rejected() -> TestResult {
    let token = primary_token_with(|c| c["nbf"] = json!(now() + 10));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("nbf"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_issued_sixty_seconds_in_the_future_is_rejected() -> TestResult {
    let token = primary_token_with(|c| c["iat"] = json!(now() + 60));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("iat"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_without_nbf_is_rejected() -> TestResult {
    let token = primary_token_with(|c| {
        c.as_object_mut().map(|m| m.remove("nbf"));
    });
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("nbf"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_without_iat_is_rejected() -> TestResult {
    let token = primary_token_with(|c| {
        c.as_object_mut().map(|m| m.remove("iat"));
    });
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("iat"), "{message}");
    Ok(())
}

#[tokio::test]
async fn hs256_token_signed_with_the_public_key_as_secret_is_rejected() -> TestResult {
    let keys = ClerkKeys::primary();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys.kid().to_owned());
    let secret = EncodingKey::from_secret(keys.public_pem().as_bytes());
    let token = jsonwebtoken::encode(&header, &session_token("user_123"), &secret)?;
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("algorithm"), "{message}");
    Ok(())
}

#[tokio::test]
async fn unsigned_alg_none_token_is_rejected() -> TestResult {
    let header = json!({"alg": "none", "typ": "JWT", "kid": ClerkKeys::primary().kid()});
    let token = unsigned_token(&header, &session_token("user_123"));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("algorithm"), "{message}");
    Ok(())
}

#[tokio::test]
async fn rs384_token_from_the_right_key_is_rejected() -> TestResult {
    let keys = ClerkKeys::primary();
    let mut header = keys.header();
    header.alg = Algorithm::RS384;
    let token = keys.sign_with_header(&header, &session_token("user_123"));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("algorithm"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_signed_with_another_key_is_rejected() -> TestResult {
    let token = ClerkKeys::other().sign(&session_token("user_123"));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("signature"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_with_a_tampered_payload_is_rejected() -> TestResult {
    let genuine = primary_token_with(|_| {});
    let forged = primary_token_with(|c| c["sub"] = json!("user_admin"));
    let genuine: Vec<&str> = genuine.split('.').collect();
    let forged: Vec<&str> = forged.split('.').collect();
    let spliced = format!("{}.{}.{}", genuine[0], forged[1], genuine[2]);
    let message = rejection(&pem_verifier()?, &spliced).await?;
    assert!(message.contains("signature"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_with_a_typ_other_than_jwt_is_rejected() -> TestResult {
    let keys = ClerkKeys::primary();
    let mut header = keys.header();
    header.typ = Some("at+jwt".to_owned());
    let token = keys.sign_with_header(&header, &session_token("user_123"));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("typ"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_without_sub_is_rejected() -> TestResult {
    let token = primary_token_with(|c| {
        c.as_object_mut().map(|m| m.remove("sub"));
    });
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("sub"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_without_sid_is_rejected() -> TestResult {
    let token = primary_token_with(|c| {
        c.as_object_mut().map(|m| m.remove("sid"));
    });
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("sid"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_with_a_non_string_sid_is_rejected() -> TestResult {
    let token = primary_token_with(|c| c["sid"] = json!(42));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("sid"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_for_an_azp_outside_the_allowlist_is_rejected() -> TestResult {
    let token = primary_token_with(|c| c["azp"] = json!("https://evil.example"));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("azp"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_without_azp_is_rejected_when_an_allowlist_is_set() -> TestResult {
    let token = primary_token_with(|c| {
        c.as_object_mut().map(|m| m.remove("azp"));
    });
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("azp"), "{message}");
    Ok(())
}

#[tokio::test]
async fn any_azp_or_none_is_accepted_when_no_allowlist_is_set() -> TestResult {
    let settings = ClerkSettings { authorized_parties: Vec::new(), ..pem_settings() };
    let verifier = ClerkVerifier::new(settings, http()?)?;
    accepted(&verifier, &primary_token_with(|c| c["azp"] = json!("https://anything.example"))).await?;
    let without = primary_token_with(|c| {
        c.as_object_mut().map(|m| m.remove("azp"));
    });
    assert_eq!(accepted(&verifier, &without).await?.azp, None);
    Ok(())
}

#[tokio::test]
async fn allowlisted_origin_with_a_trailing_slash_still_matches() -> TestResult {
    let settings = ClerkSettings { authorized_parties: vec![format!(" {TEST_AUTHORIZED_PARTY}/ ")], ..pem_settings() };
    let verifier = ClerkVerifier::new(settings, http()?)?;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    Ok(())
}

#[tokio::test]
async fn token_from_another_issuer_is_rejected_when_an_issuer_is_set() -> TestResult {
    let token = primary_token_with(|c| c["iss"] = json!("https://other.clerk.accounts.dev"));
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("iss"), "{message}");
    Ok(())
}

#[tokio::test]
async fn token_without_iss_is_rejected_when_an_issuer_is_set() -> TestResult {
    let token = primary_token_with(|c| {
        c.as_object_mut().map(|m| m.remove("iss"));
    });
    let message = rejection(&pem_verifier()?, &token).await?;
    assert!(message.contains("iss"), "{message}");
    Ok(())
}

#[tokio::test]
async fn pending_session_status_is_accepted_and_kept_in_claims() -> TestResult {
    let token = primary_token_with(|c| {
        c["sts"] = json!("pending");
        c["act"] = json!({"sub": "user_support", "sid": "sess_x", "iss": TEST_ISSUER});
    });
    let claims = accepted(&pem_verifier()?, &token).await?;
    assert_eq!(claims.sts.as_deref(), Some("pending"));
    assert_eq!(claims.act.as_ref().and_then(|a| a["sub"].as_str()), Some("user_support"));
    Ok(())
}

#[tokio::test]
async fn malformed_tokens_are_rejected_without_echoing_them() -> TestResult {
    let verifier = pem_verifier()?;
    for token in ["", "not-a-jwt", "a.b", "a.b.c.d", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA"] {
        rejection(&verifier, token).await?;
    }
    rejection(&verifier, &"A".repeat(20_000)).await?;
    Ok(())
}

// ---- configuration -------------------------------------------------------------------------------------------------

fn config_error(result: Result<ClerkVerifier, AuthError>) -> Result<String, Box<dyn Error>> {
    match result {
        Err(AuthError::Config(message)) => Ok(message),
        other => Err(format!("expected a Config error, got {other:?}").into()),
    }
}

#[tokio::test]
async fn garbage_pem_is_a_config_error() -> TestResult {
    let settings = ClerkSettings {
        jwt_key_pem: Some("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n".to_owned()),
        ..ClerkSettings::default()
    };
    config_error(ClerkVerifier::new(settings, http()?))?;
    let settings = ClerkSettings { jwt_key_pem: Some("hello".to_owned()), ..ClerkSettings::default() };
    config_error(ClerkVerifier::new(settings, http()?))?;
    Ok(())
}

#[tokio::test]
async fn private_key_pem_is_a_config_error() -> TestResult {
    let private = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    let settings = ClerkSettings { jwt_key_pem: Some(private.to_owned()), ..ClerkSettings::default() };
    let message = config_error(ClerkVerifier::new(settings, http()?))?;
    assert!(message.contains("private"), "{message}");
    Ok(())
}

#[tokio::test]
async fn non_http_jwks_url_is_a_config_error() -> TestResult {
    for url in ["ftp://clerk.example.com/.well-known/jwks.json", "file:///etc/jwks.json", "not a url"] {
        let settings = ClerkSettings { jwks_url: Some(url.to_owned()), ..ClerkSettings::default() };
        config_error(ClerkVerifier::new(settings, http()?))?;
    }
    Ok(())
}

#[tokio::test]
async fn missing_key_source_is_a_config_error() -> TestResult {
    let settings = ClerkSettings::default();
    assert!(!settings.is_configured());
    config_error(ClerkVerifier::new(settings, http()?))?;
    Ok(())
}

#[tokio::test]
async fn jwks_cache_ttl_above_five_minutes_is_a_config_error() -> TestResult {
    let settings = ClerkSettings { jwks_cache_ttl: Duration::from_secs(600), ..pem_settings() };
    config_error(ClerkVerifier::new(settings, http()?))?;
    Ok(())
}

// ---- JWKS mode -----------------------------------------------------------------------------------------------------

#[tokio::test]
async fn jwks_token_with_a_known_kid_is_accepted() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let verifier = jwks_verifier(&server, Duration::from_secs(10))?;
    let claims = accepted(&verifier, &primary_token_with(|_| {})).await?;
    assert_eq!(claims.sub, "user_123");
    assert_eq!(server.fetch_count(), 1);
    Ok(())
}

#[tokio::test]
async fn second_verification_within_ttl_does_not_refetch_jwks() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let verifier = jwks_verifier(&server, Duration::from_secs(10))?;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    accepted(&verifier.clone(), &primary_token_with(|_| {})).await?;
    assert_eq!(server.fetch_count(), 1);
    Ok(())
}

#[tokio::test]
async fn jwks_is_refetched_once_the_ttl_has_passed() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let settings =
        ClerkSettings { jwks_cache_ttl: Duration::from_millis(200), ..jwks_settings(&server, Duration::from_secs(10)) };
    let verifier = ClerkVerifier::new(settings, http()?)?;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    assert_eq!(server.fetch_count(), 2);
    Ok(())
}

#[tokio::test]
async fn unknown_kid_triggers_one_refetch_that_picks_up_a_rotated_key() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let verifier = jwks_verifier(&server, Duration::ZERO)?;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    assert_eq!(server.fetch_count(), 1);

    server.set_keys(vec![ClerkKeys::primary().jwk(), ClerkKeys::other().jwk()]);
    let rotated = ClerkKeys::other().sign(&session_token("user_123"));
    accepted(&verifier, &rotated).await?;
    assert_eq!(server.fetch_count(), 2);
    accepted(&verifier, &rotated).await?;
    assert_eq!(server.fetch_count(), 2, "the rotated key is cached now");
    Ok(())
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() -> TestResult {
    let min_interval = Duration::from_millis(300);
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let verifier = jwks_verifier(&server, min_interval)?;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    tokio::time::sleep(min_interval + Duration::from_millis(50)).await;

    let unknown = ClerkKeys::other().sign(&session_token("user_123"));
    for _ in 0..2 {
        let message = rejection(&verifier, &unknown).await?;
        assert!(message.contains("kid"), "{message}");
    }
    assert_eq!(server.fetch_count(), 2, "two unknown-kid tokens, one extra fetch");
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    assert_eq!(server.fetch_count(), 2, "known keys stay usable without fetching");

    tokio::time::sleep(min_interval + Duration::from_millis(50)).await;
    rejection(&verifier, &unknown).await?;
    assert_eq!(server.fetch_count(), 3, "allowed again once the interval has passed");
    Ok(())
}

#[tokio::test]
async fn token_without_kid_is_rejected_in_jwks_mode() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let verifier = jwks_verifier(&server, Duration::from_secs(10))?;
    let keys = ClerkKeys::primary();
    let mut header = keys.header();
    header.kid = None;
    let token = keys.sign_with_header(&header, &session_token("user_123"));
    let message = rejection(&verifier, &token).await?;
    assert!(message.contains("kid"), "{message}");
    assert_eq!(server.fetch_count(), 0);
    Ok(())
}

#[tokio::test]
async fn token_signed_by_another_key_under_a_known_kid_is_rejected_in_jwks_mode() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let verifier = jwks_verifier(&server, Duration::from_secs(10))?;
    let token = ClerkKeys::other().sign_with_header(&ClerkKeys::primary().header(), &session_token("user_123"));
    let message = rejection(&verifier, &token).await?;
    assert!(message.contains("signature"), "{message}");
    Ok(())
}

#[tokio::test]
async fn failing_jwks_endpoint_makes_verification_unavailable() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    server.set_failing(true);
    let verifier = jwks_verifier(&server, Duration::from_secs(10))?;
    let token = primary_token_with(|_| {});
    for _ in 0..2 {
        match verifier.verify(&token).await {
            Err(AuthError::Unavailable(message)) => assert!(!message.contains(&token)),
            other => return Err(format!("expected Unavailable, got {other:?}").into()),
        }
    }
    assert_eq!(server.fetch_count(), 1, "a failing endpoint is not retried within the interval");
    Ok(())
}

#[tokio::test]
async fn verification_recovers_once_the_jwks_endpoint_does() -> TestResult {
    let min_interval = Duration::from_millis(100);
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    server.set_failing(true);
    let verifier = jwks_verifier(&server, min_interval)?;
    let token = primary_token_with(|_| {});
    assert!(matches!(verifier.verify(&token).await, Err(AuthError::Unavailable(_))));
    server.set_failing(false);
    tokio::time::sleep(min_interval + Duration::from_millis(50)).await;
    accepted(&verifier, &token).await?;
    assert_eq!(server.fetch_count(), 2);
    Ok(())
}

#[tokio::test]
async fn unreachable_jwks_endpoint_makes_verification_unavailable() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let settings = jwks_settings(&server, Duration::from_secs(10));
    drop(server);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let verifier = ClerkVerifier::new(settings, http()?)?;
    let result = verifier.verify(&primary_token_with(|_| {})).await;
    assert!(matches!(result, Err(AuthError::Unavailable(_))), "{result:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_verifications_on_a_cold_cache_fetch_the_jwks_once() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    server.set_delay(Duration::from_millis(200));
    let verifier = jwks_verifier(&server, Duration::from_secs(10))?;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let verifier = verifier.clone();
        let token = primary_token_with(|_| {});
        tasks.push(tokio::spawn(async move { verifier.verify(&token).await }));
    }
    for task in tasks {
        task.await??;
    }
    assert_eq!(server.fetch_count(), 1);
    Ok(())
}

#[tokio::test]
async fn issuer_derived_from_the_jwks_url_is_enforced() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::primary().jwk()]).await?;
    let settings = ClerkSettings { issuer: None, ..jwks_settings(&server, Duration::from_secs(10)) };
    let verifier = ClerkVerifier::new(settings, http()?)?;
    let message = rejection(&verifier, &primary_token_with(|_| {})).await?;
    assert!(message.contains("iss"), "{message}");
    accepted(&verifier, &primary_token_with(|c| c["iss"] = json!(server.base_url()))).await?;
    Ok(())
}

#[tokio::test]
async fn pem_wins_over_jwks_when_both_are_set() -> TestResult {
    let server = FakeJwksServer::start(vec![ClerkKeys::other().jwk()]).await?;
    server.set_failing(true);
    let settings = ClerkSettings { jwks_url: Some(server.jwks_url()), ..pem_settings() };
    let verifier = ClerkVerifier::new(settings, http()?)?;
    accepted(&verifier, &primary_token_with(|_| {})).await?;
    // With a PEM key the kid is ignored: the same key verifies whatever kid the header names.
    let keys = ClerkKeys::primary();
    let mut header = keys.header();
    header.kid = Some("ins_unknown".to_owned());
    accepted(&verifier, &keys.sign_with_header(&header, &session_token("user_123"))).await?;
    assert_eq!(server.fetch_count(), 0);
    Ok(())
}
