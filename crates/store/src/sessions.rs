//! Queries on `sessions`. The read-modify-write of a session runs in one transaction holding the row's lock,
//! so concurrent PATCHes of different context keys never lose an update.

use mentorfy_core::{JobId, OrgId, Session, SessionId, SessionStatus};
use sea_query::{Expr, ExprTrait, Iden, LockType, Order, Query, SelectStatement};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;
use crate::jobs::NewJob;

#[derive(Iden, Clone, Copy)]
pub(crate) enum Sessions {
    Table,
    Id,
    OrgId,
    SupermemoryContainer,
    Email,
    Phone,
    Name,
    ClerkUserId,
    Context,
    Status,
    CreatedAt,
    UpdatedAt,
}

const COLUMNS: [Sessions; 11] = [
    Sessions::Id,
    Sessions::OrgId,
    Sessions::SupermemoryContainer,
    Sessions::Email,
    Sessions::Phone,
    Sessions::Name,
    Sessions::ClerkUserId,
    Sessions::Context,
    Sessions::Status,
    Sessions::CreatedAt,
    Sessions::UpdatedAt,
];

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    id: Uuid,
    org_id: String,
    supermemory_container: String,
    email: Option<String>,
    phone: Option<String>,
    name: Option<String>,
    clerk_user_id: Option<String>,
    context: Json<serde_json::Value>,
    status: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(Session {
            id: SessionId::from_uuid(r.id),
            org_id: OrgId::parse(&r.org_id).map_err(StoreError::Other)?,
            supermemory_container: r.supermemory_container,
            email: r.email,
            phone: r.phone,
            name: r.name,
            clerk_user_id: r.clerk_user_id,
            context: r.context.0,
            status: SessionStatus::parse(&r.status)
                .ok_or_else(|| StoreError::Other(format!("unknown session status '{}'", r.status)))?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) fn select_sessions() -> SelectStatement {
    Query::select().columns(COLUMNS).from(Sessions::Table).to_owned()
}

pub(crate) fn rows_to_sessions(rows: Vec<SessionRow>) -> Result<Vec<Session>, StoreError> {
    rows.into_iter().map(Session::try_from).collect()
}

impl Store {
    /// Inserts a new session; `created_at`/`updated_at` are set here and returned.
    pub async fn insert_session(&self, session: &Session) -> Result<Session, StoreError> {
        let t = now();
        let mut stored = session.clone();
        stored.created_at = t;
        stored.updated_at = t;
        let stmt = Query::insert()
            .into_table(Sessions::Table)
            .columns(COLUMNS)
            .values(self.session_values(&stored))
            .map_err(|e| StoreError::Other(e.to_string()))?
            .to_owned();
        self.execute(&stmt).await?;
        Ok(stored)
    }

    pub async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let stmt = select_sessions().and_where(Expr::col(Sessions::Id).eq(id.as_uuid())).to_owned();
        self.fetch_optional::<SessionRow>(&stmt).await?.map(Session::try_from).transpose()
    }

    /// Reads the session under a write lock, lets `change` edit it, and writes it back in the same
    /// transaction. `change` returning an error rolls everything back. `None` when the session does not exist.
    /// `updated_at` is set here; `id`, `org_id`, `supermemory_container` and `created_at` cannot be changed.
    pub async fn modify_session<F, E>(&self, id: SessionId, change: F) -> Result<Option<Session>, E>
    where
        F: FnOnce(&mut Session) -> Result<(), E> + Send,
        E: From<StoreError>,
    {
        Ok(self.modify_session_and_enqueue(id, change, |_, _| Vec::new()).await?.map(|(session, _)| session))
    }

    /// [`Store::modify_session`], and enqueues the jobs `jobs` computes from the session before and after the
    /// change, in the same transaction: the change and its jobs commit together or not at all. Returns the
    /// session and the ids of the jobs enqueued (debounced ones, see [`Store::enqueue`], are left out).
    pub async fn modify_session_and_enqueue<F, J, E>(
        &self,
        id: SessionId,
        change: F,
        jobs: J,
    ) -> Result<Option<(Session, Vec<JobId>)>, E>
    where
        F: FnOnce(&mut Session) -> Result<(), E> + Send,
        J: FnOnce(&Session, &Session) -> Vec<NewJob> + Send,
        E: From<StoreError>,
    {
        let mut tx = self.begin_for_update().await?;
        let select =
            select_sessions().and_where(Expr::col(Sessions::Id).eq(id.as_uuid())).lock(LockType::Update).to_owned();
        let Some(row) = tx.fetch_optional::<SessionRow>(&select).await? else {
            return Ok(None);
        };
        let mut session = Session::try_from(row)?;
        let before = session.clone();
        change(&mut session)?;
        session.updated_at = now();
        session.id = before.id;
        session.org_id = before.org_id.clone();
        session.supermemory_container = before.supermemory_container.clone();
        session.created_at = before.created_at;
        let kind = self.kind();
        let update = Query::update()
            .table(Sessions::Table)
            .value(Sessions::Email, session.email.clone())
            .value(Sessions::Phone, session.phone.clone())
            .value(Sessions::Name, session.name.clone())
            .value(Sessions::ClerkUserId, session.clerk_user_id.clone())
            .value(Sessions::Context, session.context.clone())
            .value(Sessions::Status, session.status.as_str())
            .value(Sessions::UpdatedAt, ts(kind, session.updated_at))
            .and_where(Expr::col(Sessions::Id).eq(id.as_uuid()))
            .to_owned();
        tx.execute(&update).await?;
        let mut enqueued = Vec::new();
        for job in jobs(&before, &session) {
            if let Some(job_id) = self.enqueue_in(&mut tx, &job).await? {
                enqueued.push(job_id);
            }
        }
        tx.commit().await?;
        Ok(Some((session, enqueued)))
    }

    /// The most recently active session of `org` linked to this Clerk user.
    pub async fn latest_session_for_user(
        &self,
        org: &OrgId,
        clerk_user_id: &str,
    ) -> Result<Option<Session>, StoreError> {
        let stmt = select_sessions()
            .and_where(Expr::col(Sessions::OrgId).eq(org.as_str()))
            .and_where(Expr::col(Sessions::ClerkUserId).eq(clerk_user_id))
            .order_by(Sessions::UpdatedAt, Order::Desc)
            .limit(1)
            .to_owned();
        self.fetch_optional::<SessionRow>(&stmt).await?.map(Session::try_from).transpose()
    }

    /// Whether another session of `org` with this (normalised) email is linked to a signed-in user,
    /// i.e. whether signing in would let this person recover it.
    pub async fn linked_session_with_email_exists(
        &self,
        org: &OrgId,
        email: &str,
        except: SessionId,
    ) -> Result<bool, StoreError> {
        let stmt = Query::select()
            .column(Sessions::Id)
            .from(Sessions::Table)
            .and_where(Expr::col(Sessions::OrgId).eq(org.as_str()))
            .and_where(Expr::col(Sessions::Email).eq(email))
            .and_where(Expr::col(Sessions::ClerkUserId).is_not_null())
            .and_where(Expr::col(Sessions::Id).ne(except.as_uuid()))
            .limit(1)
            .to_owned();
        Ok(self.fetch_optional::<(Uuid,)>(&stmt).await?.is_some())
    }

    /// Sessions of an org, newest first (operators, tests and later the dashboard).
    pub async fn list_sessions(&self, org: &OrgId, limit: u64) -> Result<Vec<Session>, StoreError> {
        let stmt = select_sessions()
            .and_where(Expr::col(Sessions::OrgId).eq(org.as_str()))
            .order_by(Sessions::CreatedAt, Order::Desc)
            .limit(limit)
            .to_owned();
        rows_to_sessions(self.fetch_all::<SessionRow>(&stmt).await?)
    }

    /// Marks `in_progress` sessions with no activity since `idle_since` as `abandoned`; returns how many.
    /// `updated_at` is left alone: it keeps meaning "last activity".
    pub async fn mark_abandoned_sessions(&self, idle_since: OffsetDateTime) -> Result<u64, StoreError> {
        let stmt = Query::update()
            .table(Sessions::Table)
            .value(Sessions::Status, SessionStatus::Abandoned.as_str())
            .and_where(Expr::col(Sessions::Status).eq(SessionStatus::InProgress.as_str()))
            .and_where(Expr::col(Sessions::UpdatedAt).lt(ts(self.kind(), idle_since)))
            .to_owned();
        self.execute(&stmt).await
    }

    /// Test and operator hook: sets a session's last activity (for example to age it before a sweep).
    pub async fn set_session_updated_at(&self, id: SessionId, at: OffsetDateTime) -> Result<u64, StoreError> {
        let stmt = Query::update()
            .table(Sessions::Table)
            .value(Sessions::UpdatedAt, ts(self.kind(), at))
            .and_where(Expr::col(Sessions::Id).eq(id.as_uuid()))
            .to_owned();
        self.execute(&stmt).await
    }

    fn session_values(&self, s: &Session) -> Vec<Expr> {
        let kind = self.kind();
        vec![
            Expr::val(s.id.as_uuid()),
            Expr::val(s.org_id.as_str()),
            Expr::val(s.supermemory_container.as_str()),
            Expr::val(s.email.clone()),
            Expr::val(s.phone.clone()),
            Expr::val(s.name.clone()),
            Expr::val(s.clerk_user_id.clone()),
            Expr::val(s.context.clone()),
            Expr::val(s.status.as_str()),
            ts(kind, s.created_at),
            ts(kind, s.updated_at),
        ]
    }
}
