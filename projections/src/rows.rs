//! Set-based batches for read models whose rows are replaced whole: a batch
//! loads the rows its events touch (one statement), folds the events into
//! them in memory, and writes every changed row back (one statement). Rows are
//! serde structs whose field names are the table's columns.

use application::auth::Page;
use domain::{DomainEvent, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres};
use std::collections::HashMap;
use uuid::Uuid;

/// The rows of `table` (keyed by an `id uuid` column) with these ids, by id.
async fn load<T: DeserializeOwned + Send + Unpin + 'static>(
    conn: &mut PgConnection,
    table: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, T>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Json<T>)> =
        sqlx::query_as(&format!("SELECT id, to_jsonb(t) FROM {table} t WHERE id = ANY($1)"))
            .bind(ids)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(id, Json(row))| (id, row)).collect())
}

/// Inserts or replaces these rows of `table`. The columns are the rows' field names.
async fn save<'a, T: Serialize + 'a>(
    conn: &mut PgConnection,
    table: &str,
    rows: impl IntoIterator<Item = &'a T>,
) -> Result<(), sqlx::Error> {
    let rows = rows
        .into_iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let Some(serde_json::Value::Object(first)) = rows.first() else {
        return Ok(());
    };
    let columns: Vec<&str> = first.keys().map(String::as_str).filter(|c| *c != "id").collect();
    let excluded: Vec<String> = columns.iter().map(|c| format!("EXCLUDED.{c}")).collect();
    let statement = format!(
        "INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1)
         ON CONFLICT (id) DO UPDATE SET ({}) = ROW({})",
        columns.join(", "),
        excluded.join(", ")
    );
    // One statement per slice: a batch of big events (a contact import holds a
    // thousand rows) must stay under PostgreSQL's 256 MB limit on one jsonb value.
    for slice in rows.chunks(ROWS_PER_STATEMENT) {
        sqlx::query(&statement).bind(Json(slice)).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Rows written by one statement.
const ROWS_PER_STATEMENT: usize = 10_000;

/// Loads the rows of `ids` from `table`, lets `fold` change them (a `None`
/// entry is a row not there), saves those that exist afterwards and deletes
/// those the fold took away.
pub(crate) async fn fold_batch<T, F>(
    conn: &mut PgConnection,
    table: &str,
    ids: impl IntoIterator<Item = Uuid>,
    fold: F,
) -> Result<(), sqlx::Error>
where
    T: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
    F: FnOnce(&mut HashMap<Uuid, Option<T>>) -> Result<(), sqlx::Error>,
{
    let ids: Vec<Uuid> = ids
        .into_iter()
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    let mut loaded = load::<T>(conn, table, &ids).await?;
    let existed: Vec<Uuid> = loaded.keys().copied().collect();
    let mut rows: HashMap<Uuid, Option<T>> = ids.into_iter().map(|id| (id, loaded.remove(&id))).collect();
    fold(&mut rows)?;
    let removed: Vec<Uuid> = existed
        .into_iter()
        .filter(|id| matches!(rows.get(id), Some(None)))
        .collect();
    if !removed.is_empty() {
        sqlx::query(&format!("DELETE FROM {table} WHERE id = ANY($1)"))
            .bind(&removed)
            .execute(&mut *conn)
            .await?;
    }
    save(conn, table, rows.values().flatten()).await
}

/// Folds keyed changes into their rows in order: `evolve` gets the row of the
/// change's id (`None` while there is none) — one load and one write per batch.
pub(crate) async fn evolve_batch<T, C, E>(
    conn: &mut PgConnection,
    table: &str,
    changes: Vec<(Uuid, C)>,
    evolve: E,
) -> Result<(), sqlx::Error>
where
    T: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
    C: Send,
    E: Fn(&mut Option<T>, Uuid, C) + Send,
{
    let ids: Vec<Uuid> = changes.iter().map(|(id, _)| *id).collect();
    fold_batch(conn, table, ids, |rows| {
        for (id, change) in changes {
            evolve(rows.entry(id).or_default(), id, change);
        }
        Ok(())
    })
    .await
}

/// An event read as `E`, a failure being the read model's error.
pub(crate) fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, sqlx::Error> {
    event.decode().map_err(decode_error)
}

/// The events on streams of `stream_type`, each read as `E` with its stream's id.
pub(crate) fn of_stream_type<E: DomainEvent>(
    events: &[RecordedEvent],
    stream_type: &str,
) -> Result<Vec<(Uuid, E)>, sqlx::Error> {
    events
        .iter()
        .filter(|e| e.stream_type == stream_type)
        .map(|e| Ok((stream_uuid(e)?, decode(e)?)))
        .collect()
}

/// One page of a listing: `query` binds every parameter but the last two, the
/// page's `LIMIT` and `OFFSET`.
pub(crate) async fn fetch_page(
    pool: &PgPool,
    query: Query<'_, Postgres, PgArguments>,
    page: Page,
) -> Result<Vec<PgRow>, sqlx::Error> {
    query.bind(page.limit).bind(page.offset).fetch_all(pool).await
}

/// The id of the stream an event belongs to (`<stream type>-<uuid>`).
pub(crate) fn stream_uuid(event: &domain::RecordedEvent) -> Result<Uuid, sqlx::Error> {
    event
        .stream_id
        .strip_prefix(event.stream_type.as_str())
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| sqlx::Error::Decode(format!("stream id {:?} holds no uuid", event.stream_id).into()))
}

/// Turns an event decoding error into the read model's error.
pub(crate) fn decode_error(error: domain::events::DecodeError) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(error))
}

/// A text column holding a serde enum (a status, a provider), read back as its type.
pub(crate) fn text_enum<T: DeserializeOwned>(raw: String) -> Result<T, application::AppError> {
    serde_json::from_value(serde_json::Value::String(raw))
        .map_err(|e| application::AppError::internal("reading a stored value", e))
}
