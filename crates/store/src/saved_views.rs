//! Saved views of the dashboard (issue 7): a named set of filters for one page.

use sea_query::{Expr, ExprTrait, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;

#[derive(sea_query::Iden, Clone, Copy)]
enum SavedViews {
    Table,
    Id,
    Name,
    Page,
    Filters,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

const COLUMNS: [SavedViews; 7] = [
    SavedViews::Id,
    SavedViews::Name,
    SavedViews::Page,
    SavedViews::Filters,
    SavedViews::CreatedBy,
    SavedViews::CreatedAt,
    SavedViews::UpdatedAt,
];

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SavedViewRow {
    pub id: Uuid,
    pub name: String,
    /// The dashboard page, e.g. `conversations`.
    pub page: String,
    /// A JSON object of the page's filters (query parameters).
    #[sqlx(json)]
    pub filters: serde_json::Value,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Store {
    pub async fn create_saved_view(
        &self,
        name: &str,
        page: &str,
        filters: &serde_json::Value,
        created_by: Option<&str>,
    ) -> Result<SavedViewRow, StoreError> {
        let kind = self.kind();
        let t = now();
        let stmt = Query::insert()
            .into_table(SavedViews::Table)
            .columns(COLUMNS)
            .values([
                Expr::val(Uuid::now_v7()),
                Expr::val(name),
                Expr::val(page),
                Expr::val(filters.clone()),
                Expr::val(created_by),
                ts(kind, t),
                ts(kind, t),
            ])
            .map_err(|e| StoreError::Other(e.to_string()))?
            .returning(Query::returning().columns(COLUMNS))
            .to_owned();
        self.write_returning::<SavedViewRow>(&stmt)
            .await?
            .ok_or_else(|| StoreError::Other("insert returned no row".into()))
    }

    /// Sets the name and/or filters; `None` when there is no such view.
    pub async fn update_saved_view(
        &self,
        id: Uuid,
        name: Option<&str>,
        filters: Option<&serde_json::Value>,
    ) -> Result<Option<SavedViewRow>, StoreError> {
        let mut stmt = Query::update();
        stmt.table(SavedViews::Table).value(SavedViews::UpdatedAt, ts(self.kind(), now()));
        if let Some(name) = name {
            stmt.value(SavedViews::Name, name);
        }
        if let Some(filters) = filters {
            stmt.value(SavedViews::Filters, filters.clone());
        }
        stmt.and_where(Expr::col(SavedViews::Id).eq(id)).returning(Query::returning().columns(COLUMNS));
        self.write_returning::<SavedViewRow>(&stmt).await
    }

    pub async fn get_saved_view(&self, id: Uuid) -> Result<Option<SavedViewRow>, StoreError> {
        let stmt = Query::select()
            .columns(COLUMNS)
            .from(SavedViews::Table)
            .and_where(Expr::col(SavedViews::Id).eq(id))
            .to_owned();
        self.fetch_optional::<SavedViewRow>(&stmt).await
    }

    /// Deletes a view; false when there was none.
    pub async fn delete_saved_view(&self, id: Uuid) -> Result<bool, StoreError> {
        let stmt = Query::delete().from_table(SavedViews::Table).and_where(Expr::col(SavedViews::Id).eq(id)).to_owned();
        Ok(self.execute(&stmt).await? > 0)
    }

    /// The views, of one page when given, by page and name.
    pub async fn list_saved_views(&self, page: Option<&str>) -> Result<Vec<SavedViewRow>, StoreError> {
        let mut stmt = Query::select();
        stmt.columns(COLUMNS).from(SavedViews::Table);
        if let Some(page) = page {
            stmt.and_where(Expr::col(SavedViews::Page).eq(page));
        }
        stmt.order_by(SavedViews::Page, Order::Asc)
            .order_by(SavedViews::Name, Order::Asc)
            .order_by(SavedViews::Id, Order::Asc);
        self.fetch_all::<SavedViewRow>(&stmt).await
    }
}
