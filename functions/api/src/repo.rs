//! The DynamoDB reads the API needs beyond `Store`: pages with a resume key, scans,
//! deletes and time-bounded index queries. Items come back as JSON values or typed.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use tradeflow_adapters::store::{Item, Store, StoreError, from_item, s};

use crate::page::{Page, PageReq, encode};

fn sdk_err<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
    table: &str,
    e: E,
) -> StoreError {
    StoreError::Dynamo {
        op,
        table: table.into(),
        throttled: false,
        source: Box::new(e),
    }
}

/// Typed items and the resume token of a query or scan page.
fn page_of<T: DeserializeOwned>(
    table: &str,
    items: Option<Vec<Item>>,
    last_key: Option<&Item>,
) -> Result<Page<T>, StoreError> {
    let items = items
        .unwrap_or_default()
        .into_iter()
        .map(|i| from_item(table, i))
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        next: last_key.map(encode),
    })
}

/// One page of a strategy's items through a table's `by_strategy` index, newest first.
///
/// # Errors
/// The SDK error or a malformed item.
pub async fn by_strategy_page<T: DeserializeOwned>(
    store: &Store,
    table: &str,
    strategy_id: &str,
    req: &PageReq,
) -> Result<Page<T>, StoreError> {
    query_page(
        store,
        &PartitionQuery {
            table,
            index: Some("by_strategy"),
            pk_name: "strategy_id",
            pk_value: strategy_id,
            newest_first: true,
        },
        req,
    )
    .await
}

/// One partition of a table or index, a page at a time.
pub struct PartitionQuery<'a> {
    pub table: &'a str,
    pub index: Option<&'a str>,
    pub pk_name: &'a str,
    pub pk_value: &'a str,
    pub newest_first: bool,
}

/// Reads one page of a partition.
///
/// # Errors
/// The SDK error or a malformed item.
pub async fn query_page<T: DeserializeOwned>(
    store: &Store,
    q: &PartitionQuery<'_>,
    req: &PageReq,
) -> Result<Page<T>, StoreError> {
    let out = store
        .client
        .query()
        .table_name(q.table)
        .set_index_name(q.index.map(String::from))
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", q.pk_name)
        .expression_attribute_values(":pk", s(q.pk_value))
        .scan_index_forward(!q.newest_first)
        .limit(req.limit)
        .set_exclusive_start_key(req.start.clone())
        .send()
        .await
        .map_err(|e| sdk_err("query", q.table, e))?;
    page_of(q.table, out.items, out.last_evaluated_key.as_ref())
}

/// Reads one page of a whole table (unordered).
///
/// # Errors
/// The SDK error or a malformed item.
pub async fn scan_page<T: DeserializeOwned>(
    store: &Store,
    table: &str,
    req: &PageReq,
) -> Result<Page<T>, StoreError> {
    let out = store
        .client
        .scan()
        .table_name(table)
        .limit(req.limit)
        .set_exclusive_start_key(req.start.clone())
        .send()
        .await
        .map_err(|e| sdk_err("scan", table, e))?;
    page_of(table, out.items, out.last_evaluated_key.as_ref())
}

/// Reads a whole table, up to `cap` items.
///
/// # Errors
/// The SDK error or a malformed item.
pub async fn scan_all<T: DeserializeOwned>(
    store: &Store,
    table: &str,
    cap: usize,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let page = store
            .client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| sdk_err("scan", table, e))?;
        for i in page.items.unwrap_or_default() {
            out.push(from_item(table, i)?);
        }
        match page.last_evaluated_key {
            Some(k) if out.len() < cap => start = Some(k),
            _ => break,
        }
    }
    out.truncate(cap);
    Ok(out)
}

/// Reads every item of an index partition whose sort key is at least `since`.
///
/// # Errors
/// The SDK error or a malformed item.
pub async fn query_since<T: DeserializeOwned>(
    store: &Store,
    q: &PartitionQuery<'_>,
    sk_name: &str,
    since: &str,
    cap: usize,
) -> Result<Vec<T>, StoreError> {
    let query = store
        .client
        .query()
        .table_name(q.table)
        .set_index_name(q.index.map(String::from))
        .key_condition_expression("#pk = :pk AND #sk >= :since")
        .expression_attribute_names("#pk", q.pk_name)
        .expression_attribute_names("#sk", sk_name)
        .expression_attribute_values(":pk", s(q.pk_value))
        .expression_attribute_values(":since", s(since))
        .scan_index_forward(!q.newest_first);
    let mut out: Vec<T> = store.all_pages(q.table, query, Some(cap)).await?;
    out.truncate(cap);
    Ok(out)
}

/// Deletes one item by key.
///
/// # Errors
/// The SDK error.
pub async fn delete(store: &Store, table: &str, key: Item) -> Result<(), StoreError> {
    store
        .client
        .delete_item()
        .table_name(table)
        .set_key(Some(key))
        .send()
        .await
        .map_err(|e| sdk_err("delete", table, e))?;
    Ok(())
}

pub fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
