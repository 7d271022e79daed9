//! Orders and positions: the records that touch money. Amounts are exact decimals.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}

/// Our view of an order's life. IBKR's statuses map onto these (see the IBKR adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// The item exists; the broker call is under way or its outcome is unknown.
    Submitting,
    /// Recorded only (dry-run strategy).
    DryRun,
    PreSubmitted,
    Submitted,
    PartiallyFilled,
    Filled,
    Cancelled,
    Rejected,
}

impl OrderStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Rejected
                | OrderStatus::DryRun
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Our client order id (IBKR `cOID`, echoed back as `order_ref`).
    pub order_id: String,
    pub strategy_id: String,
    pub execution_id: String,
    pub conid: i64,
    pub symbol: String,
    pub side: Side,
    /// `LMT` or `MKT`.
    pub order_type: String,
    pub quantity: Decimal,
    pub limit_price: Option<Decimal>,
    pub tif: String,
    pub status: OrderStatus,
    pub broker_order_id: Option<String>,
    pub filled_quantity: Decimal,
    pub avg_fill_price: Option<Decimal>,
    pub commission: Decimal,
    pub stop: Option<Decimal>,
    pub target: Option<Decimal>,
    pub created_at: String,
    pub updated_at: String,
    pub history: Vec<StatusChange>,
    /// Why the order exists: entry from a signal or an exit by the monitor.
    pub purpose: String,
}

/// Derives the client order id from the execution and the leg, so every retry of
/// the same step computes the same id and IBKR's duplicate-cOID check backs ours.
/// IBKR limits cOID length; a hash keeps it short and free of odd characters.
pub fn client_order_id(execution_id: &str, leg: &str) -> String {
    let digest = Sha256::digest(format!("{execution_id}|{leg}").as_bytes());
    format!("tf-{}", &hex::encode(digest)[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_id_is_stable_per_execution_and_leg() {
        let a = client_order_id("exec-1", "entry");

        assert_eq!(a, client_order_id("exec-1", "entry"));
        assert_ne!(a, client_order_id("exec-1", "exit"));
        assert_ne!(a, client_order_id("exec-2", "entry"));
        assert!(a.len() <= 30 && a.starts_with("tf-"));
    }
}
