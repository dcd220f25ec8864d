//! Memory rows (issue 4): the embedded memory engine's storage. Rows are read whole for indexing in process;
//! nothing here ranks or embeds (that is `mentorfy-memory`'s job), and nothing here knows the Supermemory API.

use sea_query::{Expr, ExprTrait, Func, Iden, InsertStatement, OnConflict, Order, Query, SelectStatement};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Store, StoreKind, Tx};
use crate::dialect::{now, ts};
use crate::error::StoreError;

#[derive(Iden, Clone, Copy)]
enum MemoryContainers {
    Table,
    Container,
    Version,
    MemoryCount,
}

#[derive(Iden, Clone, Copy)]
enum Memories {
    Table,
    Id,
    Container,
    Content,
    Source,
    Key,
    MemoryDate,
    MemoryGroup,
    Position,
    Embedding,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

const MEMORY_COLUMNS: [Memories; 12] = [
    Memories::Id,
    Memories::Container,
    Memories::Content,
    Memories::Source,
    Memories::Key,
    Memories::MemoryDate,
    Memories::MemoryGroup,
    Memories::Position,
    Memories::Embedding,
    Memories::Metadata,
    Memories::CreatedAt,
    Memories::UpdatedAt,
];

/// One stored memory.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MemoryRow {
    pub id: Uuid,
    /// The namespace (`{org}-{session}`); validated by the memory crate before it gets here.
    pub container: String,
    pub content: String,
    /// What produced it: `chat`, `context`, `import`…
    pub source: String,
    /// Unique within the container when set: a new memory with the same key replaces the row.
    pub key: Option<String>,
    /// When what it tells happened; `None` when unknown.
    pub memory_date: Option<OffsetDateTime>,
    /// Consecutive memories (a chat session's turns) share a group, ordered by `position`.
    pub memory_group: Option<String>,
    pub position: Option<i64>,
    /// Little-endian `f32` values of the embedding; `None` when it was stored without a model.
    pub embedding: Option<Vec<u8>>,
    /// A JSON object.
    #[sqlx(json)]
    pub metadata: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A memory to write; the caller generates the id (UUID v7).
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemoryRow<'a> {
    pub id: Uuid,
    pub container: &'a str,
    pub content: &'a str,
    pub source: &'a str,
    pub key: Option<&'a str>,
    pub memory_date: Option<OffsetDateTime>,
    pub memory_group: Option<&'a str>,
    pub position: Option<i64>,
    pub embedding: Option<Vec<u8>>,
    /// Must be a JSON object.
    pub metadata: serde_json::Value,
}

/// A container's write counter: `version` goes up by one with every insert, replacement or delete of its
/// memories (in the same transaction), so a process can keep an index of the container in memory and still see
/// writes made by other processes sharing the database, at the cost of one primary-key read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct MemoryVersion {
    pub version: i64,
    /// How many memories the container holds.
    pub memory_count: i64,
}

fn select_memories(container: &str) -> SelectStatement {
    Query::select()
        .columns(MEMORY_COLUMNS)
        .from(Memories::Table)
        .and_where(Expr::col(Memories::Container).eq(container))
        .to_owned()
}

fn optional_ts(kind: StoreKind, t: Option<OffsetDateTime>) -> Expr {
    match t {
        Some(t) => ts(kind, t),
        None => Expr::val(Option::<OffsetDateTime>::None),
    }
}

impl Store {
    /// Writes a memory and returns the stored row. When `m.key` is set and the container already holds a memory
    /// with that key, that row is replaced in the same statement (atomic on both backends, so concurrent writers
    /// of one key leave exactly one row): it takes the new id, content, source, date, embedding, metadata and
    /// timestamps, as if the old memory had been forgotten and this one added. A reused id is
    /// [`StoreError::Conflict`].
    pub async fn upsert_memory(&self, m: NewMemoryRow<'_>) -> Result<MemoryRow, StoreError> {
        let kind = self.kind();
        let t = now();
        let insert = Query::insert()
            .into_table(Memories::Table)
            .columns(MEMORY_COLUMNS)
            .values([
                Expr::val(m.id),
                Expr::val(m.container),
                Expr::val(m.content),
                Expr::val(m.source),
                Expr::val(m.key),
                optional_ts(kind, m.memory_date),
                Expr::val(m.memory_group),
                Expr::val(m.position),
                Expr::val(m.embedding),
                Expr::val(m.metadata),
                ts(kind, t),
                ts(kind, t),
            ])
            .map_err(|e| StoreError::Other(e.to_string()))?
            .on_conflict(
                OnConflict::columns([Memories::Container, Memories::Key])
                    .target_and_where(Expr::col(Memories::Key).is_not_null())
                    .update_columns([
                        Memories::Id,
                        Memories::Content,
                        Memories::Source,
                        Memories::MemoryDate,
                        Memories::MemoryGroup,
                        Memories::Position,
                        Memories::Embedding,
                        Memories::Metadata,
                        Memories::CreatedAt,
                        Memories::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .returning(Query::returning().columns(MEMORY_COLUMNS))
            .to_owned();
        let mut tx = self.begin_for_update().await?;
        // First: takes the container row's lock, so writers of one container queue here and the count is exact.
        tx.execute(&bump_version(m.container)?).await?;
        let row = tx
            .fetch_optional::<MemoryRow>(&insert)
            .await?
            .ok_or_else(|| StoreError::Other("memory upsert returned no row".into()))?;
        recount(&mut tx, m.container).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// The container's newest `limit` memories, newest first (by `created_at`, then id).
    pub async fn list_memories(&self, container: &str, limit: u32) -> Result<Vec<MemoryRow>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stmt = select_memories(container)
            .order_by(Memories::CreatedAt, Order::Desc)
            .order_by(Memories::Id, Order::Desc)
            .limit(u64::from(limit))
            .to_owned();
        self.fetch_all::<MemoryRow>(&stmt).await
    }

    /// Every memory of the container, oldest first (by `created_at`, then id), embeddings included: what an
    /// in-process index is built from.
    pub async fn container_memories(&self, container: &str) -> Result<Vec<MemoryRow>, StoreError> {
        let stmt = select_memories(container)
            .order_by(Memories::CreatedAt, Order::Asc)
            .order_by(Memories::Id, Order::Asc)
            .to_owned();
        self.fetch_all::<MemoryRow>(&stmt).await
    }

    /// The container's [`MemoryVersion`] (zeros for a container never written): one primary-key read.
    pub async fn memory_version(&self, container: &str) -> Result<MemoryVersion, StoreError> {
        let stmt = Query::select()
            .columns([MemoryContainers::Version, MemoryContainers::MemoryCount])
            .from(MemoryContainers::Table)
            .and_where(Expr::col(MemoryContainers::Container).eq(container))
            .to_owned();
        Ok(self.fetch_optional::<MemoryVersion>(&stmt).await?.unwrap_or_default())
    }

    /// Deletes the memory `id` if it belongs to `container`; true when a row was deleted.
    pub async fn delete_memory(&self, container: &str, id: Uuid) -> Result<bool, StoreError> {
        self.delete_memory_where(container, Expr::col(Memories::Id).eq(id)).await
    }

    /// Deletes the container's memory with this `key`, if any; true when a row was deleted.
    pub async fn delete_memory_by_key(&self, container: &str, key: &str) -> Result<bool, StoreError> {
        self.delete_memory_where(container, Expr::col(Memories::Key).eq(key)).await
    }

    /// Deletes the container's memories matching `which`, bumping the container's version and recounting in the
    /// same transaction.
    async fn delete_memory_where(&self, container: &str, which: sea_query::SimpleExpr) -> Result<bool, StoreError> {
        let stmt = Query::delete()
            .from_table(Memories::Table)
            .and_where(Expr::col(Memories::Container).eq(container))
            .and_where(which)
            .to_owned();
        let mut tx = self.begin_for_update().await?;
        tx.execute(&bump_version(container)?).await?;
        let deleted = tx.execute(&stmt).await? > 0;
        recount(&mut tx, container).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// How many memories the container holds (the rollup: no scan).
    pub async fn count_memories(&self, container: &str) -> Result<i64, StoreError> {
        Ok(self.memory_version(container).await?.memory_count)
    }
}

/// Creates the container's row at version 1, or adds one to its version.
fn bump_version(container: &str) -> Result<InsertStatement, StoreError> {
    Ok(Query::insert()
        .into_table(MemoryContainers::Table)
        .columns([MemoryContainers::Container, MemoryContainers::Version, MemoryContainers::MemoryCount])
        .values([Expr::val(container), Expr::val(1i64), Expr::val(0i64)])
        .map_err(|e| StoreError::Other(e.to_string()))?
        .on_conflict(
            OnConflict::column(MemoryContainers::Container)
                .value(
                    MemoryContainers::Version,
                    Expr::col((MemoryContainers::Table, MemoryContainers::Version)).add(1),
                )
                .to_owned(),
        )
        .to_owned())
}

/// Sets the container's `memory_count` from its rows (inside the writing transaction, after the write).
async fn recount(tx: &mut Tx, container: &str) -> Result<(), StoreError> {
    let count = Query::select()
        .expr(Func::count(Expr::col(Memories::Id)))
        .from(Memories::Table)
        .and_where(Expr::col(Memories::Container).eq(container))
        .to_owned();
    let (n,): (i64,) = tx.fetch_optional(&count).await?.unwrap_or((0,));
    let update = Query::update()
        .table(MemoryContainers::Table)
        .value(MemoryContainers::MemoryCount, n)
        .and_where(Expr::col(MemoryContainers::Container).eq(container))
        .to_owned();
    tx.execute(&update).await?;
    Ok(())
}
