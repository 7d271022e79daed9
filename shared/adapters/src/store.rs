//! DynamoDB access for tradeflow's items. Items are (de)serialised with serde_dynamo
//! from the core types, so the stored shape is the documented JSON shape.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tradeflow_core::StepError;
use tradeflow_core::execution::Execution;
use tradeflow_core::strategy::Strategy;

use crate::config::Tables;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("item already exists in {table}")]
    AlreadyExists { table: String },
    #[error("dynamodb {op} on {table}: {source}")]
    Dynamo {
        op: &'static str,
        table: String,
        throttled: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("item in {table} has an unexpected shape: {source}")]
    Shape {
        table: String,
        #[source]
        source: serde_dynamo::Error,
    },
}

impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        match &e {
            // Throttling and service errors pass; retrying is the cure.
            StoreError::Dynamo { .. } => StepError::transient(e.to_string()),
            _ => StepError::fatal(e.to_string()),
        }
    }
}

pub type Item = HashMap<String, AttributeValue>;

/// Every execution item carries `feed = "executions"`: the partition key of the
/// executions table's `recent` index (sort key `started_at`), which lists all
/// strategies' executions newest first without a scan. One partition is enough:
/// executions start at most once a minute per strategy, far below a partition's
/// write limit.
pub const EXECUTION_FEED: (&str, &str) = ("feed", "executions");

#[derive(Serialize)]
struct ExecutionItem<'a> {
    #[serde(flatten)]
    execution: &'a Execution,
    feed: &'static str,
}

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Converts any serialisable value into a DynamoDB item.
///
/// # Errors
/// A value that is not a map.
pub fn to_item<T: Serialize>(table: &str, value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Shape {
        table: table.into(),
        source: e,
    })
}

/// Converts a DynamoDB item into a value.
///
/// # Errors
/// An item that does not have the shape of `T`.
pub fn from_item<T: DeserializeOwned>(table: &str, item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Shape {
        table: table.into(),
        source: e,
    })
}

fn dynamo_err<E>(op: &'static str, table: &str, e: SdkError<E>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let throttled = format!("{e:?}").contains("Throttl");
    StoreError::Dynamo {
        op,
        table: table.into(),
        throttled,
        source: Box::new(e),
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    pub client: aws_sdk_dynamodb::Client,
    pub tables: Tables,
}

impl Store {
    pub fn new(client: aws_sdk_dynamodb::Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    /// Writes an item; with `if_absent_attr`, only if no item with that key exists.
    ///
    /// # Errors
    /// `AlreadyExists` when the condition fails, or the SDK error.
    pub async fn put<T: Serialize>(
        &self,
        table: &str,
        value: &T,
        if_absent_attr: Option<&str>,
    ) -> Result<(), StoreError> {
        let item = to_item(table, value)?;
        let mut req = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item));
        if let Some(attr) = if_absent_attr {
            req = req
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", attr);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(StoreError::AlreadyExists {
                table: table.into(),
            }),
            Err(e) => Err(dynamo_err("put", table, e)),
        }
    }

    /// Reads one item by key.
    ///
    /// # Errors
    /// The SDK error or an item of the wrong shape.
    pub async fn get<T: DeserializeOwned>(
        &self,
        table: &str,
        key: Item,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_err("get", table, e))?;
        out.item.map(|i| from_item(table, i)).transpose()
    }

    /// Queries a partition (optionally through an index), newest sort key first.
    ///
    /// # Errors
    /// The SDK error or an item of the wrong shape.
    pub async fn query<T: DeserializeOwned>(
        &self,
        table: &str,
        index: Option<&str>,
        pk_name: &str,
        pk_value: &str,
        newest_first: bool,
        limit: Option<i32>,
    ) -> Result<Vec<T>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(table)
            .set_index_name(index.map(String::from))
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_values(":pk", s(pk_value))
            .scan_index_forward(!newest_first)
            .set_limit(limit);
        self.all_pages(table, query, limit.map(|l| l as usize))
            .await
    }

    /// Every item of an index partition whose sort key is at least `sk_min`, in
    /// sort-key order: a range read instead of the whole partition.
    ///
    /// # Errors
    /// The SDK error or a malformed item.
    pub async fn query_from<T: DeserializeOwned>(
        &self,
        table: &str,
        index: &str,
        (pk_name, pk_value): (&str, &str),
        (sk_name, sk_min): (&str, &str),
    ) -> Result<Vec<T>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#pk = :pk AND #sk >= :sk")
            .expression_attribute_names("#pk", pk_name)
            .expression_attribute_names("#sk", sk_name)
            .expression_attribute_values(":pk", s(pk_value))
            .expression_attribute_values(":sk", s(sk_min));
        self.all_pages(table, query, None).await
    }

    /// Runs a query page after page until the partition or `limit` items are read.
    ///
    /// # Errors
    /// The SDK error or a malformed item.
    pub async fn all_pages<T: DeserializeOwned>(
        &self,
        table: &str,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: Option<usize>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo_err("query", table, e))?;
            for item in page.items.unwrap_or_default() {
                out.push(from_item(table, item)?);
            }
            let reached = limit.is_some_and(|l| out.len() >= l);
            match page.last_evaluated_key {
                Some(k) if !reached => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Reads a strategy.
    ///
    /// # Errors
    /// The SDK error or a malformed item.
    pub async fn strategy(&self, strategy_id: &str) -> Result<Option<Strategy>, StoreError> {
        self.get(
            &self.tables.strategies,
            HashMap::from([("strategy_id".into(), s(strategy_id))]),
        )
        .await
    }

    /// Stores a strategy (create or replace).
    ///
    /// # Errors
    /// The SDK error.
    pub async fn put_strategy(&self, strategy: &Strategy) -> Result<(), StoreError> {
        self.put(&self.tables.strategies, strategy, None).await
    }

    /// Claims a scheduled tick for an execution. Returns the execution that holds
    /// the claim: ours when we won it (or already held it, on a retry), another's
    /// when this tick was already delivered.
    ///
    /// # Errors
    /// The SDK error.
    pub async fn claim_tick(
        &self,
        strategy_id: &str,
        tick: &str,
        execution_id: &str,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        let claim = serde_json::json!({
            "strategy_id": strategy_id, "tick": tick,
            "execution_id": execution_id, "expires_at": expires_at,
        });
        match self.put(&self.tables.ticks, &claim, Some("tick")).await {
            Ok(()) => Ok(execution_id.to_string()),
            Err(StoreError::AlreadyExists { .. }) => {
                let existing: Option<serde_json::Value> = self
                    .get(
                        &self.tables.ticks,
                        HashMap::from([
                            ("strategy_id".into(), s(strategy_id)),
                            ("tick".into(), s(tick)),
                        ]),
                    )
                    .await?;
                Ok(existing
                    .and_then(|v| {
                        v.get("execution_id")
                            .and_then(|e| e.as_str())
                            .map(String::from)
                    })
                    .unwrap_or_default())
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the execution item unless it exists (a retried load_strategy).
    ///
    /// # Errors
    /// The SDK error.
    pub async fn start_execution(&self, execution: &Execution) -> Result<(), StoreError> {
        let item = ExecutionItem {
            execution,
            feed: EXECUTION_FEED.1,
        };
        match self
            .put(&self.tables.executions, &item, Some("execution_id"))
            .await
        {
            Ok(()) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads an execution.
    ///
    /// # Errors
    /// The SDK error or a malformed item.
    pub async fn execution(&self, execution_id: &str) -> Result<Option<Execution>, StoreError> {
        self.get(
            &self.tables.executions,
            HashMap::from([("execution_id".into(), s(execution_id))]),
        )
        .await
    }

    /// Sets the final status of an execution with its summary or error. The other
    /// fields of `known` fill only what the item lacks (`if_not_exists`): they matter
    /// when the execution failed before load_strategy opened the item, which would
    /// otherwise hold a status and an error and nothing to list or find it by.
    ///
    /// # Errors
    /// The SDK error.
    pub async fn finish_execution(&self, known: &Execution) -> Result<(), StoreError> {
        let table = &self.tables.executions;
        let attr = |v: &serde_json::Value| {
            serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Shape {
                table: table.clone(),
                source: e,
            })
        };
        let status = serde_json::to_value(known.status)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let mut sets: Vec<String> = [
            "#st = :st",
            "finished_at = :f",
            "summary = :sum",
            "#err = :err",
            "#feed = if_not_exists(#feed, :feed)",
        ]
        .map(String::from)
        .into();
        let mut req = self
            .client
            .update_item()
            .table_name(table)
            .key("execution_id", s(&known.execution_id))
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#err", "error")
            .expression_attribute_names("#feed", EXECUTION_FEED.0)
            .expression_attribute_values(":st", s(status))
            .expression_attribute_values(":f", s(known.finished_at.as_deref().unwrap_or_default()))
            .expression_attribute_values(":feed", s(EXECUTION_FEED.1));
        for (name, value) in [(":sum", &known.summary), (":err", &known.error)] {
            let av = match value {
                Some(v) => attr(v)?,
                None => AttributeValue::Null(true),
            };
            req = req.expression_attribute_values(name, av);
        }
        // Index keys (strategy_id, started_at) must never be written empty.
        let fill = [
            ("execution_arn", ":arn", "#arn", &known.execution_arn),
            ("strategy_id", ":sid", "#sid", &known.strategy_id),
            ("trigger", ":tr", "#tr", &known.trigger),
            ("tick", ":tick", "#tick", &known.tick),
            ("started_at", ":sa", "#sa", &known.started_at),
        ];
        for (attr_name, value_ref, name_ref, value) in fill {
            if value.is_empty() {
                continue;
            }
            sets.push(format!(
                "{name_ref} = if_not_exists({name_ref}, {value_ref})"
            ));
            req = req
                .expression_attribute_names(name_ref, attr_name)
                .expression_attribute_values(value_ref, s(value));
        }
        req.update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(|e| dynamo_err("update", table, e))?;
        Ok(())
    }
}

pub(crate) fn is_conditional_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    match e {
        SdkError::ServiceError(se) => se.err().code() == Some("ConditionalCheckFailedException"),
        _ => false,
    }
}
