#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Admins, API keys and the one-row app settings on both backends: case-insensitive unique emails, key lifecycle,
//! the throttled `last_used_at`, and race-safe secret initialisation.

use mentorfy_store::{AppSecrets, NewApiKey, StoreError};
use mentorfy_test_support::{TestDb, both_backends};
use time::Duration;

both_backends!(
    admin_emails_are_lower_cased_and_unique_ignoring_case,
    login_touch_sets_last_login_at,
    api_key_round_trips_and_lists_newest_first,
    duplicate_prefix_or_hash_is_a_conflict,
    revoke_is_idempotent_and_unknown_key_is_none,
    touch_writes_last_used_at_at_most_once_a_minute,
    concurrent_secret_inits_agree_on_one_row,
);

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn key<'a>(name: &'a str, prefix: &'a str, hash: &'a [u8]) -> NewApiKey<'a> {
    NewApiKey { name, environment: "production", prefix, key_hash: hash, created_by: Some("cli") }
}

async fn admin_emails_are_lower_cased_and_unique_ignoring_case(db: TestDb) {
    let store = db.store().await;
    let admin = store.create_admin(" Ada@Example.COM ", HASH).await.unwrap();
    assert_eq!(admin.email, "ada@example.com");
    let found = store.find_admin_by_email("ADA@example.com").await.unwrap().unwrap();
    assert_eq!(found.id, admin.id);
    assert_eq!(found.password_hash, HASH);
    assert!(matches!(store.create_admin("ada@EXAMPLE.com", HASH).await, Err(StoreError::Conflict(_))));
    assert!(store.find_admin_by_email("bob@example.com").await.unwrap().is_none());
}

async fn login_touch_sets_last_login_at(db: TestDb) {
    let store = db.store().await;
    let admin = store.create_admin("ada@example.com", HASH).await.unwrap();
    assert!(admin.last_login_at.is_none());
    store.touch_admin_login(admin.id).await.unwrap();
    let read = store.get_admin(admin.id).await.unwrap().unwrap();
    assert!(read.last_login_at.is_some());
}

async fn api_key_round_trips_and_lists_newest_first(db: TestDb) {
    let store = db.store().await;
    let first = store.insert_api_key(&key("first", "sk_sensei_aaaaaaaa", &[1u8; 32])).await.unwrap();
    let second = store
        .insert_api_key(&NewApiKey { environment: "staging", ..key("second", "sk_sensei_bbbbbbbb", &[2u8; 32]) })
        .await
        .unwrap();
    let read = store.find_api_key_by_prefix("sk_sensei_aaaaaaaa").await.unwrap().unwrap();
    assert_eq!(read.id, first.id);
    assert_eq!(read.key_hash, vec![1u8; 32]);
    assert_eq!(read.environment, "production");
    assert_eq!(read.created_by.as_deref(), Some("cli"));
    assert_eq!(read.created_at, first.created_at);
    assert!(read.revoked_at.is_none() && read.last_used_at.is_none());
    let list = store.list_api_keys().await.unwrap();
    assert_eq!(list.iter().map(|k| k.id).collect::<Vec<_>>(), vec![second.id, first.id]);
    assert_eq!(list[0].environment, "staging");
    assert!(store.find_api_key_by_prefix("sk_sensei_cccccccc").await.unwrap().is_none());
}

async fn duplicate_prefix_or_hash_is_a_conflict(db: TestDb) {
    let store = db.store().await;
    store.insert_api_key(&key("a", "sk_sensei_aaaaaaaa", &[1u8; 32])).await.unwrap();
    let same_prefix = store.insert_api_key(&key("b", "sk_sensei_aaaaaaaa", &[2u8; 32])).await;
    assert!(matches!(same_prefix, Err(StoreError::Conflict(_))), "{same_prefix:?}");
    let same_hash = store.insert_api_key(&key("c", "sk_sensei_cccccccc", &[1u8; 32])).await;
    assert!(matches!(same_hash, Err(StoreError::Conflict(_))), "{same_hash:?}");
    let short_hash = store.insert_api_key(&key("d", "sk_sensei_dddddddd", &[1u8; 8])).await;
    assert!(matches!(short_hash, Err(StoreError::Conflict(_))), "{short_hash:?}");
}

async fn revoke_is_idempotent_and_unknown_key_is_none(db: TestDb) {
    let store = db.store().await;
    let k = store.insert_api_key(&key("a", "sk_sensei_aaaaaaaa", &[1u8; 32])).await.unwrap();
    let revoked = store.revoke_api_key(k.id).await.unwrap().unwrap();
    let at = revoked.revoked_at.unwrap();
    let again = store.revoke_api_key(k.id).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(at));
    assert!(store.revoke_api_key(uuid::Uuid::now_v7()).await.unwrap().is_none());
}

async fn touch_writes_last_used_at_at_most_once_a_minute(db: TestDb) {
    let store = db.store().await;
    let k = store.insert_api_key(&key("a", "sk_sensei_aaaaaaaa", &[1u8; 32])).await.unwrap();
    let t0 = mentorfy_store::now();
    assert!(store.touch_api_key(k.id, t0).await.unwrap());
    assert!(!store.touch_api_key(k.id, t0 + Duration::seconds(30)).await.unwrap());
    assert!(!store.touch_api_key(k.id, t0 + Duration::seconds(59)).await.unwrap());
    let read = store.get_api_key(k.id).await.unwrap().unwrap();
    assert_eq!(read.last_used_at, Some(t0));
    assert!(store.touch_api_key(k.id, t0 + Duration::seconds(61)).await.unwrap());
    let read = store.get_api_key(k.id).await.unwrap().unwrap();
    assert_eq!(read.last_used_at, Some(t0 + Duration::seconds(61)));
}

async fn concurrent_secret_inits_agree_on_one_row(db: TestDb) {
    let store = db.store().await;
    let candidates: Vec<AppSecrets> = (0..8u8)
        .map(|i| AppSecrets {
            admin_jwt_secret: format!("{i:02x}").repeat(32),
            api_key_pepper: format!("{:02x}", i + 100).repeat(32),
        })
        .collect();
    let results = futures::future::join_all(candidates.iter().map(|c| {
        let store = store.clone();
        async move { store.app_secrets_get_or_init(c).await.unwrap() }
    }))
    .await;
    let first = &results[0];
    assert!(candidates.iter().any(|c| c.admin_jwt_secret == first.admin_jwt_secret));
    for r in &results {
        assert_eq!(r.admin_jwt_secret, first.admin_jwt_secret);
        assert_eq!(r.api_key_pepper, first.api_key_pepper);
    }
    let later = store
        .app_secrets_get_or_init(&AppSecrets { admin_jwt_secret: "ff".repeat(32), api_key_pepper: "ee".repeat(32) })
        .await
        .unwrap();
    assert_eq!(later.admin_jwt_secret, first.admin_jwt_secret);
}
