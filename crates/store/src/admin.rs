//! Queries on `admins`, `api_keys` and the one-row `app_settings` (issue 5). Stores only password hashes and key
//! digests, never a password or a key; knows nothing of how they are computed.

use sea_query::{Expr, ExprTrait, Iden, OnConflict, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;

/// `last_used_at` is written at most this often per key.
pub const API_KEY_TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);

#[derive(Iden, Clone, Copy)]
enum Admins {
    Table,
    Id,
    Email,
    PasswordHash,
    CreatedAt,
    LastLoginAt,
}

#[derive(Iden, Clone, Copy)]
enum ApiKeys {
    Table,
    Id,
    Name,
    Environment,
    Prefix,
    KeyHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
    CreatedBy,
}

#[derive(Iden, Clone, Copy)]
enum AppSettings {
    Table,
    Id,
    AdminJwtSecret,
    ApiKeyPepper,
    CreatedAt,
}

/// A local admin account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminRow {
    pub id: Uuid,
    /// Lower-cased.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub last_login_at: Option<OffsetDateTime>,
}

/// A project API key as stored: metadata and the keyed digest, never the key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub environment: String,
    /// `sk_sensei_<id>`.
    pub prefix: String,
    /// HMAC-SHA-256(pepper, full key), 32 bytes.
    pub key_hash: Vec<u8>,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub created_by: Option<String>,
}

/// A key to insert.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub name: &'a str,
    pub environment: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a [u8],
    pub created_by: Option<&'a str>,
}

/// The generated server secrets (hex strings), shared by every server on this database.
#[derive(Clone, sqlx::FromRow)]
pub struct AppSecrets {
    pub admin_jwt_secret: String,
    pub api_key_pepper: String,
}

impl std::fmt::Debug for AppSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppSecrets([redacted])")
    }
}

const API_KEY_COLUMNS: [ApiKeys; 9] = [
    ApiKeys::Id,
    ApiKeys::Name,
    ApiKeys::Environment,
    ApiKeys::Prefix,
    ApiKeys::KeyHash,
    ApiKeys::CreatedAt,
    ApiKeys::LastUsedAt,
    ApiKeys::RevokedAt,
    ApiKeys::CreatedBy,
];

const ADMIN_COLUMNS: [Admins; 5] =
    [Admins::Id, Admins::Email, Admins::PasswordHash, Admins::CreatedAt, Admins::LastLoginAt];

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

impl Store {
    /// Creates an admin; the email is trimmed and lower-cased. `Conflict` when the email is taken.
    pub async fn create_admin(&self, email: &str, password_hash: &str) -> Result<AdminRow, StoreError> {
        let row = AdminRow {
            id: Uuid::now_v7(),
            email: email.trim().to_lowercase(),
            password_hash: password_hash.to_owned(),
            created_at: now(),
            last_login_at: None,
        };
        let stmt = Query::insert()
            .into_table(Admins::Table)
            .columns([Admins::Id, Admins::Email, Admins::PasswordHash, Admins::CreatedAt])
            .values([
                Expr::val(row.id),
                Expr::val(row.email.clone()),
                Expr::val(row.password_hash.clone()),
                ts(self.kind(), row.created_at),
            ])
            .map_err(invalid)?
            .to_owned();
        self.execute(&stmt).await?;
        Ok(row)
    }

    /// The admin with this email (compared lower-cased).
    pub async fn find_admin_by_email(&self, email: &str) -> Result<Option<AdminRow>, StoreError> {
        let stmt = Query::select()
            .columns(ADMIN_COLUMNS)
            .from(Admins::Table)
            .and_where(Expr::col(Admins::Email).eq(email.trim().to_lowercase()))
            .to_owned();
        self.fetch_optional(&stmt).await
    }

    pub async fn get_admin(&self, id: Uuid) -> Result<Option<AdminRow>, StoreError> {
        let stmt = Query::select()
            .columns(ADMIN_COLUMNS)
            .from(Admins::Table)
            .and_where(Expr::col(Admins::Id).eq(id))
            .to_owned();
        self.fetch_optional(&stmt).await
    }

    /// Records a successful login.
    pub async fn touch_admin_login(&self, id: Uuid) -> Result<(), StoreError> {
        let stmt = Query::update()
            .table(Admins::Table)
            .value(Admins::LastLoginAt, ts(self.kind(), now()))
            .and_where(Expr::col(Admins::Id).eq(id))
            .to_owned();
        self.execute(&stmt).await?;
        Ok(())
    }

    /// Inserts a key. `Conflict` if the prefix or digest already exists.
    pub async fn insert_api_key(&self, key: &NewApiKey<'_>) -> Result<ApiKeyRow, StoreError> {
        let row = ApiKeyRow {
            id: Uuid::now_v7(),
            name: key.name.to_owned(),
            environment: key.environment.to_owned(),
            prefix: key.prefix.to_owned(),
            key_hash: key.key_hash.to_vec(),
            created_at: now(),
            last_used_at: None,
            revoked_at: None,
            created_by: key.created_by.map(str::to_owned),
        };
        let stmt = Query::insert()
            .into_table(ApiKeys::Table)
            .columns([
                ApiKeys::Id,
                ApiKeys::Name,
                ApiKeys::Environment,
                ApiKeys::Prefix,
                ApiKeys::KeyHash,
                ApiKeys::CreatedAt,
                ApiKeys::CreatedBy,
            ])
            .values([
                Expr::val(row.id),
                Expr::val(row.name.clone()),
                Expr::val(row.environment.clone()),
                Expr::val(row.prefix.clone()),
                Expr::val(row.key_hash.clone()),
                ts(self.kind(), row.created_at),
                Expr::val(row.created_by.clone()),
            ])
            .map_err(invalid)?
            .to_owned();
        self.execute(&stmt).await?;
        Ok(row)
    }

    /// Every key, newest first, revoked ones included.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let stmt = Query::select()
            .columns(API_KEY_COLUMNS)
            .from(ApiKeys::Table)
            .order_by(ApiKeys::CreatedAt, Order::Desc)
            .order_by(ApiKeys::Id, Order::Desc)
            .to_owned();
        self.fetch_all(&stmt).await
    }

    pub async fn get_api_key(&self, id: Uuid) -> Result<Option<ApiKeyRow>, StoreError> {
        let stmt = Query::select()
            .columns(API_KEY_COLUMNS)
            .from(ApiKeys::Table)
            .and_where(Expr::col(ApiKeys::Id).eq(id))
            .to_owned();
        self.fetch_optional(&stmt).await
    }

    /// The key with this public prefix (`sk_sensei_<id>`), revoked or not.
    pub async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let stmt = Query::select()
            .columns(API_KEY_COLUMNS)
            .from(ApiKeys::Table)
            .and_where(Expr::col(ApiKeys::Prefix).eq(prefix))
            .to_owned();
        self.fetch_optional(&stmt).await
    }

    /// Revokes a key (idempotent: an already revoked key keeps its first `revoked_at`). `None` when no such key.
    pub async fn revoke_api_key(&self, id: Uuid) -> Result<Option<ApiKeyRow>, StoreError> {
        let stmt = Query::update()
            .table(ApiKeys::Table)
            .value(ApiKeys::RevokedAt, ts(self.kind(), now()))
            .and_where(Expr::col(ApiKeys::Id).eq(id))
            .and_where(Expr::col(ApiKeys::RevokedAt).is_null())
            .to_owned();
        self.execute(&stmt).await?;
        self.get_api_key(id).await
    }

    /// Sets `last_used_at` to `at` unless it was set less than [`API_KEY_TOUCH_INTERVAL`] before `at` (the check
    /// is in the UPDATE's WHERE, so concurrent requests write at most once). Returns whether it wrote.
    pub async fn touch_api_key(&self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        let kind = self.kind();
        let cutoff = at - API_KEY_TOUCH_INTERVAL;
        let stmt = Query::update()
            .table(ApiKeys::Table)
            .value(ApiKeys::LastUsedAt, ts(kind, at))
            .and_where(Expr::col(ApiKeys::Id).eq(id))
            .and_where(
                Expr::col(ApiKeys::LastUsedAt).is_null().or(Expr::col(ApiKeys::LastUsedAt).lte(ts(kind, cutoff))),
            )
            .to_owned();
        Ok(self.execute(&stmt).await? > 0)
    }

    /// The server secrets: the stored row, or `candidate` inserted as that row when there is none yet. Safe when
    /// several servers start at once: the insert does nothing on conflict, and everyone reads the winner.
    pub async fn app_secrets_get_or_init(&self, candidate: &AppSecrets) -> Result<AppSecrets, StoreError> {
        let insert = Query::insert()
            .into_table(AppSettings::Table)
            .columns([AppSettings::Id, AppSettings::AdminJwtSecret, AppSettings::ApiKeyPepper, AppSettings::CreatedAt])
            .values([
                Expr::val(1i32),
                Expr::val(candidate.admin_jwt_secret.clone()),
                Expr::val(candidate.api_key_pepper.clone()),
                ts(self.kind(), now()),
            ])
            .map_err(invalid)?
            .on_conflict(OnConflict::column(AppSettings::Id).do_nothing().to_owned())
            .to_owned();
        self.execute(&insert).await?;
        let select = Query::select()
            .columns([AppSettings::AdminJwtSecret, AppSettings::ApiKeyPepper])
            .from(AppSettings::Table)
            .and_where(Expr::col(AppSettings::Id).eq(1i32))
            .to_owned();
        self.fetch_optional(&select).await?.ok_or_else(|| StoreError::Other("app_settings row missing".to_owned()))
    }
}
