//! The lineage recorder: one DynamoDB item per (execution_id, step_key), written with
//! a condition so a retried step can replace an earlier *failed* attempt (keeping its
//! error in `previous_errors`) but never a succeeded one. Payloads too large for an
//! item go to S3 with a pointer in the item.

use std::collections::HashMap;

use serde_json::{Value, json};
use tradeflow_core::lineage::{INLINE_PAYLOAD_LIMIT, LineageRecord, StepStatus};

use crate::blobs::{BlobError, Blobs};
use crate::store::{Store, StoreError, from_item, is_conditional_failure, s, to_item};

#[derive(Debug, thiserror::Error)]
pub enum LineageError {
    #[error("lineage for this step already succeeded")]
    AlreadySucceeded,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
}

#[derive(Debug, Clone)]
pub struct LineageRecorder {
    store: Store,
    blobs: Blobs,
}

impl LineageRecorder {
    pub fn new(store: Store, blobs: Blobs) -> Self {
        Self { store, blobs }
    }

    fn table(&self) -> &str {
        &self.store.tables.lineage
    }

    /// Reads the record of a step, with offloaded payloads loaded back from S3.
    ///
    /// # Errors
    /// DynamoDB or S3 errors.
    pub async fn get(
        &self,
        execution_id: &str,
        step_key: &str,
    ) -> Result<Option<LineageRecord>, LineageError> {
        let rec: Option<LineageRecord> = self
            .store
            .get(
                self.table(),
                HashMap::from([
                    ("execution_id".into(), s(execution_id)),
                    ("step_key".into(), s(step_key)),
                ]),
            )
            .await?;
        match rec {
            Some(r) => Ok(Some(self.hydrate(r).await?)),
            None => Ok(None),
        }
    }

    /// Every record of an execution, in step order.
    ///
    /// # Errors
    /// DynamoDB or S3 errors.
    pub async fn for_execution(
        &self,
        execution_id: &str,
    ) -> Result<Vec<LineageRecord>, LineageError> {
        let mut recs: Vec<LineageRecord> = self
            .store
            .query(
                self.table(),
                None,
                "execution_id",
                execution_id,
                false,
                None,
            )
            .await?;
        recs.sort_by(|a, b| {
            (a.step_number, a.recorded_at.as_str()).cmp(&(b.step_number, b.recorded_at.as_str()))
        });
        let mut out = Vec::with_capacity(recs.len());
        for r in recs {
            out.push(self.hydrate(r).await?);
        }
        Ok(out)
    }

    async fn hydrate(&self, mut r: LineageRecord) -> Result<LineageRecord, LineageError> {
        if let Some(key) = &r.payload_key {
            let payload: Value = self.blobs.get_json(key).await?;
            r.input = payload.get("input").cloned();
            r.output = payload.get("output").cloned();
        }
        Ok(r)
    }

    /// Writes a record. Large payloads are moved to S3 first.
    ///
    /// # Errors
    /// `AlreadySucceeded` when a succeeded record exists for this step; DynamoDB or S3 errors.
    pub async fn record(&self, mut rec: LineageRecord) -> Result<(), LineageError> {
        let size = rec.input.as_ref().map_or(0, |v| v.to_string().len())
            + rec.output.as_ref().map_or(0, |v| v.to_string().len());
        if size > INLINE_PAYLOAD_LIMIT {
            let key = format!(
                "lineage/{}/{}.json",
                rec.execution_id,
                rec.step_key.replace('#', "-")
            );
            self.blobs
                .put_json(&key, &json!({"input": rec.input, "output": rec.output}))
                .await?;
            rec.input = None;
            rec.output = None;
            rec.payload_key = Some(key);
        }
        let item = to_item(self.table(), &rec)?;
        let res = self
            .store
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(execution_id) OR #st = :failed")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":failed", s("FAILED"))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(LineageError::AlreadySucceeded),
            Err(e) => Err(StoreError::Dynamo {
                op: "put",
                table: self.table().into(),
                throttled: false,
                source: Box::new(e),
            }
            .into()),
        }
    }

    /// Reads raw items of a step name across executions (for statistics).
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn by_step(
        &self,
        step_name: &str,
        limit: i32,
    ) -> Result<Vec<LineageRecord>, LineageError> {
        let items = self
            .store
            .client
            .query()
            .table_name(self.table())
            .index_name("by_step")
            .key_condition_expression("step_name = :n")
            .expression_attribute_values(":n", s(step_name))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::Dynamo {
                op: "query",
                table: self.table().into(),
                throttled: false,
                source: Box::new(e),
            })?;
        items
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|i| from_item(self.table(), i).map_err(LineageError::from))
            .collect()
    }
}

/// Whether a record is a success.
pub fn succeeded(rec: &LineageRecord) -> bool {
    rec.status == StepStatus::Succeeded
}
