//! Reading one failure for triage (issue 7); the analysis writes failures (`analysis.rs`).

use sea_query::{Asterisk, Expr, ExprTrait, Query};
use uuid::Uuid;

use crate::analysis::{FailureRow, Failures};
use crate::db::Store;
use crate::error::StoreError;

impl Store {
    /// The failure with this id, if any.
    pub async fn get_failure(&self, id: Uuid) -> Result<Option<FailureRow>, StoreError> {
        let stmt = Query::select().column(Asterisk).from(Failures::Table).and_where(Expr::col(Failures::Id).eq(id)).to_owned();
        self.fetch_optional::<FailureRow>(&stmt).await
    }
}
