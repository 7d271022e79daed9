//! Placement: a workflow signal turned into at most one broker order per signal leg
//! (I1), with at most one working entry per (strategy, contract) and the strategy's
//! and the account's limits holding however runs overlap (I2).
//!
//! An entry first takes its claim (position item + contract claim + account count,
//! one conditional write), then sizes against the strategy's and the account's
//! limits, then creates the order item, which the store only writes while the claim
//! is still this order's. An exit claims the position's exit slot the same way. A
//! retry of the step resumes the order an earlier attempt created.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::account::{ContractClaim, account_day, available_cash, entry_gate};
use crate::books::Books;
use crate::orders::{
    Broker, Intent, NewOrder, Order, OrderError, OrderStatus, OrderStoreError, Placement, Side,
    client_order_id, decide, place_once, purpose,
};
use crate::payloads::PlaceOrderOutput;
use crate::portfolio::Position;
use crate::risk::{EntryRequest, size_entry};
use crate::signal::{Action, Signal};
use crate::strategy::Strategy;
use crate::tracking::{free_claims, stamp};

/// How placement ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Placed {
    Order(Box<Placement>),
    /// No order, and why.
    Nothing(String),
}

impl Placed {
    /// The step's output: placed or not, and why in words (lineage and the viewer
    /// show it).
    pub fn into_output(self, poll_seconds: u32) -> PlaceOrderOutput {
        let p = match self {
            Placed::Nothing(reason) => {
                tracing::info!(%reason, "no order");
                return PlaceOrderOutput {
                    placed: false,
                    reason,
                    order: None,
                    poll_seconds,
                };
            }
            Placed::Order(p) => *p,
        };
        let o = p.order();
        let limit = o.limit_price.map(|p| format!(" {p}")).unwrap_or_default();
        let what = format!(
            "{} {} {} {}{limit} {}",
            o.side.as_str(),
            o.quantity,
            o.symbol,
            o.order_type,
            o.tif
        );
        let (placed, reason) = match &p {
            Placement::Placed(_) => (true, format!("placed: {what}")),
            Placement::AlreadyPlaced(_) => (
                true,
                format!("already placed by an earlier attempt: {what}"),
            ),
            Placement::Rejected(o) => {
                let why = o
                    .history
                    .last()
                    .and_then(|h| h.note.clone())
                    .unwrap_or_default();
                (false, format!("rejected: {why}"))
            }
            Placement::DryRun(_) => (false, format!("dry run: order recorded, not sent: {what}")),
        };
        PlaceOrderOutput {
            placed,
            reason,
            order: Some(o.clone()),
            poll_seconds,
        }
    }
}

/// Times an entry claim is tried again after a concurrent change (re-read each time).
const CLAIM_TRIES: u32 = 4;

/// Places what `signal` asks of `strategy` in execution `execution_id`.
///
/// # Errors
/// Broker and store errors (transient ones are retried by the state machine: every
/// write here is idempotent or version-checked, and a retry resumes).
#[tracing::instrument(skip_all, fields(strategy_id = %s.strategy_id, execution_id))]
pub async fn place_signal<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    s: &Strategy,
    signal: &Signal,
    execution_id: &str,
    now: DateTime<Utc>,
) -> Result<Placed, OrderError> {
    if signal.action == Action::Hold {
        return Ok(Placed::Nothing("HOLD".into()));
    }
    let at = stamp(now);
    for leg in ["entry", "exit"] {
        let id = client_order_id(execution_id, leg);
        if let Some(existing) = books.get(&id).await? {
            tracing::info!(order_id = %id, status = ?existing.status, "resuming the order of an earlier attempt");
            return Ok(Placed::Order(Box::new(
                place_once(broker, books, existing, &at).await?,
            )));
        }
    }
    let position = books.position(&s.strategy_id, s.conid).await?;
    let intent = decide(signal.action, position.as_ref(), s.risk.allow_short);
    match intent {
        Intent::Nothing(why) => Ok(Placed::Nothing(why)),
        Intent::Enter(side) => {
            let order_id = client_order_id(execution_id, "entry");
            enter(broker, books, s, signal, side, order_id, execution_id, now).await
        }
        Intent::Exit { side, quantity } => {
            let order_id = client_order_id(execution_id, "exit");
            let Some(p) = position else {
                return Ok(Placed::Nothing("exit without a position".into()));
            };
            exit(
                broker,
                books,
                s,
                signal,
                side,
                quantity,
                p,
                order_id,
                execution_id,
                now,
            )
            .await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn enter<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    s: &Strategy,
    sig: &Signal,
    side: Side,
    order_id: String,
    execution_id: &str,
    now: DateTime<Utc>,
) -> Result<Placed, OrderError> {
    let at = stamp(now);
    let (account, claims) = if s.dry_run {
        (Default::default(), Vec::new())
    } else {
        match claim_entry(books, s, side, &order_id, now).await? {
            Ok(ac) => ac,
            Err(why) => return Ok(Placed::Nothing(why)),
        }
    };
    let sized = size(broker, books, s, sig, side, &account, &claims, now).await;
    let sizing = match sized {
        Ok(Ok(sz)) => sz,
        Ok(Err(why)) => {
            release_entry(books, s, &order_id, now).await?;
            return Ok(Placed::Nothing(why));
        }
        Err(e) => return Err(e),
    };
    tracing::info!(qty = %sizing.quantity, limited_by = %sizing.limited_by, "entry sized");
    let new = NewOrder {
        order_id: order_id.clone(),
        strategy_id: s.strategy_id.clone(),
        execution_id: execution_id.to_string(),
        conid: s.conid,
        symbol: s.symbol.clone(),
        side,
        order_type: "LMT".into(),
        quantity: sizing.quantity,
        limit_price: Some(sizing.entry),
        tif: "DAY".into(),
        stop: sig.stop,
        target: sig.target,
        purpose: purpose::ENTRY.into(),
        position_id: None,
        sizing: Some(sizing),
    };
    submit(broker, books, s, new, now, &at).await
}

/// Takes the entry claim (see the module doc), or says why the account refuses.
async fn claim_entry<S: Books>(
    books: &S,
    s: &Strategy,
    side: Side,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<Result<(crate::account::Account, Vec<ContractClaim>), String>, OrderError> {
    let at = stamp(now);
    for _ in 0..CLAIM_TRIES {
        let account = books.account().await?;
        let claims = books.contract_claims().await?;
        let p = books.position(&s.strategy_id, s.conid).await?;
        if p.as_ref().and_then(|p| p.entry_order_id.as_deref()) == Some(order_id) {
            // An earlier attempt of this step took it and died before the order.
            return Ok(Ok((account, claims)));
        }
        if let Some(other) = p.as_ref().and_then(|p| p.entry_order_id.clone()) {
            return Ok(Err(format!(
                "entry order {other} is already working on {}",
                s.symbol
            )));
        }
        let flat = p
            .as_ref()
            .is_none_or(|p| !p.is_open() && p.exit_order_id.is_none());
        let own_idle = claims
            .iter()
            .any(|c| c.conid == s.conid && c.holder == s.strategy_id && c.entry_order_id.is_none());
        if flat && own_idle {
            // Left by a release that did not complete: free it, then decide again.
            free_claims(books, &s.strategy_id, s.conid, None, None, now).await?;
            continue;
        }
        let realized = books.realized_on(&account_day(now)).await?;
        if let Err(no) = entry_gate(&s.strategy_id, s.conid, side, &account, &claims, realized) {
            return Ok(Err(no.to_string()));
        }
        let mut p = p.unwrap_or_else(|| Position::flat(&s.strategy_id, s.conid, &s.symbol, &at));
        p.entry_order_id = Some(order_id.to_string());
        p.entry_claimed_at = Some(at.clone());
        let claim = ContractClaim {
            conid: s.conid,
            holder: s.strategy_id.clone(),
            side,
            entry_order_id: Some(order_id.to_string()),
            reserved: Decimal::ZERO,
            claimed_at: at.clone(),
        };
        match books
            .claim_entry(&mut p, &claim, account.limits.max_open_positions)
            .await
        {
            Ok(()) => {
                tracing::info!(order_id, conid = s.conid, "entry claim taken");
                return Ok(Ok((account, claims)));
            }
            // Someone else moved first: read again and decide again.
            Err(OrderStoreError::Conflict(what)) => {
                tracing::info!(%what, "entry claim contended; reading again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(OrderStoreError::Conflict(format!("entry claim on {} stayed contended", s.conid)).into())
}

async fn release_entry<S: Books>(
    books: &S,
    s: &Strategy,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    if !s.dry_run {
        free_claims(books, &s.strategy_id, s.conid, Some(order_id), None, now).await?;
    }
    Ok(())
}

/// The sized entry, or why there is none (a limit, a bad signal).
#[allow(clippy::too_many_arguments)]
async fn size<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    s: &Strategy,
    sig: &Signal,
    side: Side,
    account: &crate::account::Account,
    claims: &[ContractClaim],
    now: DateTime<Utc>,
) -> Result<Result<crate::risk::Sizing, String>, OrderError> {
    // The kill switch's "today" is the exchange's trading day, not the UTC date.
    let clock = match s.market.clock() {
        Ok(c) => c,
        Err(e) => return Ok(Err(format!("strategy {}: market.{e}", s.strategy_id))),
    };
    let since = stamp(clock.trading_day_lower_bound(now));
    let recent = books.trades_closed_since(&s.strategy_id, &since).await?;
    let realized_today = clock.realized_on_trading_day(&recent, now);
    // Its other contracts' positions and working entries count; this one is ours.
    let open_positions = books
        .positions_of(&s.strategy_id)
        .await?
        .iter()
        .filter(|p| p.conid != s.conid && (p.is_open() || p.entry_order_id.is_some()))
        .count() as u32;
    let available_cash = if s.dry_run {
        s.risk.capital
    } else {
        available_cash(
            broker.cash(&s.currency).await?,
            claims,
            &s.strategy_id,
            s.conid,
        )
    };
    let mut risk = s.risk.clone();
    if let Some(cap) = account.limits.max_contract_value {
        risk.max_position_value = risk.max_position_value.min(cap);
    }
    let req = EntryRequest {
        side,
        entry: sig.entry,
        stop: sig.stop,
        confidence: sig.confidence,
        available_cash,
        open_positions,
        realized_today,
    };
    Ok(size_entry(&risk, &req).map_err(|no| no.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn exit<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    s: &Strategy,
    sig: &Signal,
    side: Side,
    quantity: Decimal,
    mut p: Position,
    order_id: String,
    execution_id: &str,
    now: DateTime<Utc>,
) -> Result<Placed, OrderError> {
    let at = stamp(now);
    if let Some(entry) = &p.entry_order_id {
        // Its fills would land after the exit's: the entry ends first.
        return Ok(Placed::Nothing(format!(
            "entry order {entry} is still working on the position"
        )));
    }
    if let Some(other) = p.exit_order_id.as_ref().filter(|x| **x != order_id) {
        return Ok(Placed::Nothing(format!(
            "exit order {other} is already working on the position"
        )));
    }
    if !s.dry_run && p.exit_order_id.is_none() {
        // The claim keeps the position monitor from selling the same shares.
        p.exit_order_id = Some(order_id.clone());
        p.exit_claimed_at = Some(at.clone());
        p.exit_attempts += 1;
        match books.save_position(&mut p).await {
            Ok(()) => {}
            Err(OrderStoreError::Conflict(_)) => {
                return Err(OrderStoreError::Conflict(format!(
                    "position {}/{} changed while claiming its exit",
                    s.strategy_id, s.conid
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let new = NewOrder {
        order_id,
        strategy_id: s.strategy_id.clone(),
        execution_id: execution_id.to_string(),
        conid: s.conid,
        symbol: s.symbol.clone(),
        side,
        order_type: if sig.entry.is_some() { "LMT" } else { "MKT" }.into(),
        quantity,
        limit_price: sig.entry,
        tif: "DAY".into(),
        stop: None,
        target: None,
        purpose: purpose::SIGNAL_EXIT.into(),
        position_id: Some(p.position_id.clone()),
        sizing: None,
    };
    submit(broker, books, s, new, now, &at).await
}

/// Creates and sends the order; frees its claim when the broker rejects it or
/// the claim was lost before the item could be created.
async fn submit<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    s: &Strategy,
    new: NewOrder,
    now: DateTime<Utc>,
    at: &str,
) -> Result<Placed, OrderError> {
    let (status, note) = if s.dry_run {
        (OrderStatus::DryRun, Some("dry run: not sent".to_string()))
    } else {
        (OrderStatus::Submitting, None)
    };
    let order = Order::new(new, status, at, note);
    let (entry, exit) = if order.is_entry() {
        (Some(order.order_id.clone()), None)
    } else {
        (None, Some(order.order_id.clone()))
    };
    let placement = match place_once(broker, books, order, at).await {
        Ok(p) => p,
        Err(OrderError::Store(OrderStoreError::ClaimLost(id))) => {
            return Ok(Placed::Nothing(format!(
                "the claim of order {id} was released as stale before the order existed; nothing sent"
            )));
        }
        Err(e) => return Err(e),
    };
    if matches!(placement, Placement::Rejected(_)) && !s.dry_run {
        free_claims(
            books,
            &s.strategy_id,
            s.conid,
            entry.as_deref(),
            exit.as_deref(),
            now,
        )
        .await?;
    }
    Ok(Placed::Order(Box::new(placement)))
}
