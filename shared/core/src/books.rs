//! The books port: what the money path's use cases (placement, tracking, exits,
//! reconciliation) read and write besides the broker. Orders, positions, trades, the
//! account's contract claims and day, and the domain events. Every write that must
//! not interleave with another is one call here, so an adapter makes it one
//! conditional transaction.

use std::future::Future;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::account::{Account, ContractClaim};
use crate::orders::{Order, OrderStore, OrderStoreError};
use crate::portfolio::{FillOutcome, Position, Trade};

/// What happens to a contract claim in the same write as its position.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimChange {
    /// The entry settled with shares held: the claim stays, without entry or reserve.
    SettleEntry(ContractClaim),
    /// The strategy is flat with no entry working: the contract is free again and
    /// the account holds one contract fewer.
    Release(ContractClaim),
}

/// One fill's effects, written all or none: the order (applied figures), the
/// position (version-checked), the trade, and the account's realised P&L of the day
/// (the account's daily loss limit reads it). Claims are freed after the commit
/// (`tracking::free_claims`), idempotently; a crash between the two leaves a
/// settled order's claim for the reconciler.
#[derive(Debug, Clone, PartialEq)]
pub struct FillCommit {
    pub order: Order,
    pub outcome: FillOutcome,
    /// The version of the position item read before the fill (none: no item yet).
    pub previous_position_version: Option<u64>,
    /// (account day, realised P&L to add) when the fill realised P&L.
    pub realized: Option<(String, Decimal)>,
}

/// Orders (through `OrderStore`), positions, trades, the account and events.
pub trait Books: OrderStore {
    /// The strategy's position item in a contract (open, claimed, or the last closed).
    fn position(
        &self,
        strategy_id: &str,
        conid: i64,
    ) -> impl Future<Output = Result<Option<Position>, OrderStoreError>> + Send;
    /// Every position item of a strategy.
    fn positions_of(
        &self,
        strategy_id: &str,
    ) -> impl Future<Output = Result<Vec<Position>, OrderStoreError>> + Send;
    /// Position items of every strategy that are open or carry a claim.
    fn watched_positions(
        &self,
    ) -> impl Future<Output = Result<Vec<Position>, OrderStoreError>> + Send;
    /// Writes a position if its version is unchanged; bumps it.
    fn save_position(
        &self,
        p: &mut Position,
    ) -> impl Future<Output = Result<(), OrderStoreError>> + Send;
    /// Orders not settled yet (the sparse `working` index), oldest first.
    fn working_orders(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Order>, OrderStoreError>> + Send;
    /// The account item (defaults when absent).
    fn account(&self) -> impl Future<Output = Result<Account, OrderStoreError>> + Send;
    /// Every contract claim of the account.
    fn contract_claims(
        &self,
    ) -> impl Future<Output = Result<Vec<ContractClaim>, OrderStoreError>> + Send;
    /// The account's realised P&L of `day` (see `account::account_day`).
    fn realized_on(
        &self,
        day: &str,
    ) -> impl Future<Output = Result<Decimal, OrderStoreError>> + Send;
    /// Takes an entry claim, all or none: the position (version-checked, its
    /// `entry_order_id` set), a new contract claim (refused when the contract has
    /// one), and the account's held count + 1 (refused at `max_held`).
    ///
    /// `Conflict` when any of them changed: re-read and decide again.
    fn claim_entry(
        &self,
        p: &mut Position,
        claim: &ContractClaim,
        max_held: Option<u32>,
    ) -> impl Future<Output = Result<(), OrderStoreError>> + Send;
    /// Writes a position (version-checked) together with a change of its contract
    /// claim, all or none.
    fn change_claim(
        &self,
        p: &mut Position,
        change: &ClaimChange,
    ) -> impl Future<Output = Result<(), OrderStoreError>> + Send;
    /// Commits a fill (see `FillCommit`); `Conflict` when another writer got there
    /// first. On success the commit's order and position carry their new versions.
    fn commit_fill(
        &self,
        commit: &mut FillCommit,
    ) -> impl Future<Output = Result<(), OrderStoreError>> + Send;
    /// Trades a strategy closed since `since` (RFC 3339), for its kill switch.
    fn trades_closed_since(
        &self,
        strategy_id: &str,
        since: &str,
    ) -> impl Future<Output = Result<Vec<Trade>, OrderStoreError>> + Send;
    /// The trades of one position (for the PositionClosed event).
    fn trades_of_position(
        &self,
        strategy_id: &str,
        position_id: &str,
    ) -> impl Future<Output = Result<Vec<Trade>, OrderStoreError>> + Send;
    /// Publishes a domain event.
    fn publish(
        &self,
        detail_type: &str,
        detail: &Value,
    ) -> impl Future<Output = Result<(), OrderStoreError>> + Send;
}
