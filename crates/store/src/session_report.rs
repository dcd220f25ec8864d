//! Reads of `sessions` for admins: the Mentor funnel (one aggregate query over the sessions created in a period)
//! and the leads list (filters and a keyset cursor, newest first). Read-only: nothing here writes a session.

use mentorfy_core::{OrgId, Session, SessionId, SessionStatus};
use sea_query::{Alias, Cond, Expr, ExprTrait, Func, Order, Query, SelectStatement};
use time::OffsetDateTime;

use crate::db::Store;
use crate::dialect::ts;
use crate::error::StoreError;
use crate::sessions::{SessionRow, Sessions, rows_to_sessions, select_sessions};

/// How far the sessions created in a period got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFunnel {
    pub created: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub abandoned: i64,
    /// Linked to a signed-in (Clerk) account.
    pub linked: i64,
    /// With an email or a phone number.
    pub with_contact: i64,
}

/// Which sessions [`Store::list_session_leads`] returns: every given field must match. `limit` is taken as is
/// (0 returns nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionLeadFilter {
    pub org: Option<OrgId>,
    pub status: Option<SessionStatus>,
    /// Linked to a signed-in account (true) or not (false).
    pub linked: Option<bool>,
    /// Has an email or a phone number (true) or neither (false).
    pub has_contact: Option<bool>,
    /// Created at or after.
    pub from: Option<OffsetDateTime>,
    /// Created before.
    pub to: Option<OffsetDateTime>,
    /// Only sessions after this position of the newest-first order: the previous page's last `(created_at, id)`.
    pub before: Option<(OffsetDateTime, SessionId)>,
    pub limit: u32,
}

fn has_contact() -> Cond {
    Cond::any().add(Expr::col(Sessions::Email).is_not_null()).add(Expr::col(Sessions::Phone).is_not_null())
}

impl Store {
    /// The funnel of the sessions created in `[from, to)`, of one org or all: how many were created, where each
    /// stands now, how many are linked and how many left a contact. One aggregate query.
    pub async fn session_funnel(
        &self,
        org: Option<&OrgId>,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<SessionFunnel, StoreError> {
        let kind = self.kind();
        // SUM of a BIGINT is NUMERIC on PostgreSQL: the sums are cast back (harmless on SQLite).
        let count_if = |cond: Cond| -> Expr {
            let sum = Func::sum(Expr::case(cond, Expr::val(1)).finally(Expr::val(0)));
            Func::cast_as(Func::coalesce([sum.into(), Expr::val(0)]), Alias::new("BIGINT")).into()
        };
        let status = |s: SessionStatus| Cond::all().add(Expr::col(Sessions::Status).eq(s.as_str()));
        let mut q = Query::select();
        q.expr(Expr::col(Sessions::Id).count())
            .expr(count_if(status(SessionStatus::InProgress)))
            .expr(count_if(status(SessionStatus::Completed)))
            .expr(count_if(status(SessionStatus::Abandoned)))
            .expr(count_if(Cond::all().add(Expr::col(Sessions::ClerkUserId).is_not_null())))
            .expr(count_if(has_contact()))
            .from(Sessions::Table)
            .and_where(Expr::col(Sessions::CreatedAt).gte(ts(kind, from)))
            .and_where(Expr::col(Sessions::CreatedAt).lt(ts(kind, to)));
        if let Some(org) = org {
            q.and_where(Expr::col(Sessions::OrgId).eq(org.as_str()));
        }
        let row = self.fetch_optional::<(i64, i64, i64, i64, i64, i64)>(&q).await?;
        let (created, in_progress, completed, abandoned, linked, with_contact) = row.unwrap_or_default();
        Ok(SessionFunnel { created, in_progress, completed, abandoned, linked, with_contact })
    }

    /// Sessions matching `f`, newest first (by `created_at`, then id).
    pub async fn list_session_leads(&self, f: &SessionLeadFilter) -> Result<Vec<Session>, StoreError> {
        if f.limit == 0 {
            return Ok(Vec::new());
        }
        let mut stmt = select_sessions();
        self.filter_session_leads(&mut stmt, f);
        stmt.order_by(Sessions::CreatedAt, Order::Desc).order_by(Sessions::Id, Order::Desc).limit(u64::from(f.limit));
        rows_to_sessions(self.fetch_all::<SessionRow>(&stmt).await?)
    }

    fn filter_session_leads(&self, stmt: &mut SelectStatement, f: &SessionLeadFilter) {
        let kind = self.kind();
        if let Some(org) = &f.org {
            stmt.and_where(Expr::col(Sessions::OrgId).eq(org.as_str()));
        }
        if let Some(status) = f.status {
            stmt.and_where(Expr::col(Sessions::Status).eq(status.as_str()));
        }
        match f.linked {
            Some(true) => {
                stmt.and_where(Expr::col(Sessions::ClerkUserId).is_not_null());
            }
            Some(false) => {
                stmt.and_where(Expr::col(Sessions::ClerkUserId).is_null());
            }
            None => {}
        }
        match f.has_contact {
            Some(true) => {
                stmt.cond_where(has_contact());
            }
            Some(false) => {
                stmt.and_where(Expr::col(Sessions::Email).is_null()).and_where(Expr::col(Sessions::Phone).is_null());
            }
            None => {}
        }
        if let Some(from) = f.from {
            stmt.and_where(Expr::col(Sessions::CreatedAt).gte(ts(kind, from)));
        }
        if let Some(to) = f.to {
            stmt.and_where(Expr::col(Sessions::CreatedAt).lt(ts(kind, to)));
        }
        if let Some((at, id)) = f.before {
            let at = ts(kind, at);
            stmt.cond_where(Cond::any().add(Expr::col(Sessions::CreatedAt).lt(at.clone())).add(
                Cond::all().add(Expr::col(Sessions::CreatedAt).eq(at)).add(Expr::col(Sessions::Id).lt(id.as_uuid())),
            ));
        }
    }
}
