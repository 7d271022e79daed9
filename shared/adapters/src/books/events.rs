//! Domain events on EventBridge (source `tradeflow`): OrderFilled, PositionClosed,
//! PositionMismatch.

use serde_json::Value;

use super::{BookError, DynamoBooks, EVENT_SOURCE};

impl DynamoBooks {
    /// Publishes one domain event on the configured bus (source `tradeflow`).
    ///
    /// # Errors
    /// `Events` when the bus refuses it.
    pub async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), BookError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| BookError::Events(format!("{e:?}")))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(BookError::Events(why));
        }
        tracing::info!(detail_type, "domain event published");
        Ok(())
    }
}
