//! The backtest report as text (terminal) and as one self-contained HTML page (the
//! chart inlined as a data URL, no scripts, no external files).

use std::fmt::Write;

use base64::Engine;
use tradeflow_core::backtest::BacktestResult;

/// The same money held in the instrument from the first bar the strategy could act on.
pub fn buy_and_hold(r: &BacktestResult) -> Option<Vec<f64>> {
    let first = r.first_trading_bar?;
    let base = r.closes.get(first)?;
    let cash: f64 = r.initial_equity.try_into().ok()?;
    Some(
        r.closes
            .iter()
            .enumerate()
            .map(|(i, c)| if i < first { cash } else { cash * c / base })
            .collect(),
    )
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The headline numbers, label and value.
fn rows(r: &BacktestResult) -> Vec<(&'static str, String)> {
    let m = &r.metrics;
    vec![
        ("Start", m.start.clone()),
        ("End", m.end.clone()),
        ("Bars", r.bars.to_string()),
        ("Exposure time [%]", num(Some(m.exposure_time_pct), 2)),
        ("Equity final", num(Some(m.equity_final), 2)),
        ("Equity peak", num(Some(m.equity_peak), 2)),
        ("Commissions", num(Some(m.commissions), 2)),
        ("Return [%]", num(Some(m.return_pct), 2)),
        ("Buy & hold return [%]", num(m.buy_and_hold_return_pct, 2)),
        ("Return (ann.) [%]", num(m.return_ann_pct, 2)),
        ("Volatility (ann.) [%]", num(m.volatility_ann_pct, 2)),
        ("CAGR [%]", num(m.cagr_pct, 2)),
        ("Sharpe ratio", num(m.sharpe_ratio, 3)),
        ("Sortino ratio", num(m.sortino_ratio, 3)),
        ("Calmar ratio", num(m.calmar_ratio, 3)),
        ("Max. drawdown [%]", num(Some(m.max_drawdown_pct), 2)),
        ("Avg. drawdown [%]", num(m.avg_drawdown_pct, 2)),
        (
            "Max. drawdown duration [days]",
            num(m.max_drawdown_duration_days, 0),
        ),
        (
            "Avg. drawdown duration [days]",
            num(m.avg_drawdown_duration_days.map(f64::ceil), 0),
        ),
        ("Trades", m.trades.to_string()),
        ("Win rate [%]", num(m.win_rate_pct, 2)),
        ("Best trade [%]", num(m.best_trade_pct, 2)),
        ("Worst trade [%]", num(m.worst_trade_pct, 2)),
        ("Avg. trade [%]", num(m.avg_trade_pct, 2)),
        ("Profit factor", num(m.profit_factor, 3)),
        ("Expectancy [%]", num(m.expectancy_pct, 3)),
        ("SQN", num(m.sqn, 3)),
        ("Kelly criterion", num(m.kelly_criterion, 4)),
        (
            "Decisions (buy / sell / hold)",
            format!(
                "{} ({} / {} / {})",
                r.decisions.decisions, r.decisions.buy, r.decisions.sell, r.decisions.hold
            ),
        ),
        (
            "Analyst calls (cached)",
            format!(
                "{} ({})",
                r.decisions.analyst_calls, r.decisions.cached_answers
            ),
        ),
    ]
}

pub fn text(r: &BacktestResult) -> String {
    let mut out = format!("{} · {}\n", r.strategy_id, r.symbol);
    for (k, v) in rows(r) {
        let _ = writeln!(out, "  {k:<32} {v}");
    }
    if let Some(p) = &r.open_position {
        let _ = writeln!(
            out,
            "  open at the end: {} from bar {} at {}, unrealised {:.2}",
            p.quantity, p.entry_bar, p.entry_price, p.unrealized_pnl
        );
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn html(r: &BacktestResult, png: &[u8]) -> String {
    let mut h = String::new();
    let title = esc(&format!("Backtest · {} · {}", r.strategy_id, r.symbol));
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>\
body{{font-family:system-ui,sans-serif;margin:24px;color:#212529}}table{{border-collapse:collapse;margin:12px 0}}\
td,th{{border-bottom:1px solid #e5e5ea;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
.win{{color:#0a7d4f}}.loss{{color:#c62828}}img{{max-width:100%}}</style></head><body><h1>{title}</h1>"
    );
    let _ = write!(
        h,
        "<p>Fill rule: {:?}; sizing: {:?}; commission: {:?}; protective exits: {}.</p>",
        r.config.fill, r.config.sizing, r.config.commission, r.config.protective_exits
    );
    if let Some(why) = &r.stopped_early {
        let _ = write!(h, "<p><strong>Stopped early:</strong> {}</p>", esc(why));
    }
    let _ = write!(
        h,
        "<img alt=\"equity and drawdown\" src=\"data:image/png;base64,{}\">",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    h.push_str("<h2>Metrics</h2><table>");
    for (k, v) in rows(r) {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
    }
    h.push_str("</table>");
    if let Some(p) = &r.open_position {
        let _ = write!(
            h,
            "<p>Open at the end (not in the trade statistics): {} from {} at {}, unrealised {:.2}.</p>",
            p.quantity,
            esc(r.times.get(p.entry_bar).map_or("", String::as_str)),
            p.entry_price,
            p.unrealized_pnl
        );
    }
    let _ = write!(
        h,
        "<h2>Trades ({})</h2><table><tr><th>#</th><th>direction</th><th>entry</th><th>exit</th><th>quantity</th><th>entry price</th><th>exit price</th><th>commission</th><th>P&amp;L</th><th>return %</th><th>R</th><th>exit</th><th>why</th></tr>",
        r.trades.len()
    );
    for (i, t) in r.trades.iter().enumerate() {
        let class = if t.pnl.is_sign_negative() {
            "loss"
        } else {
            "win"
        };
        let _ = write!(
            h,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            i + 1,
            t.direction,
            &t.entry_time[..10.min(t.entry_time.len())],
            &t.exit_time[..10.min(t.exit_time.len())],
            t.quantity,
            t.entry_price,
            t.exit_price,
            t.commission,
            t.pnl.round_dp(2),
            t.return_frac * 100.0,
            num(t.r_multiple, 2),
            esc(&t.exit_reason),
            esc(&t.entry_reason)
        );
    }
    h.push_str("</table>");
    if !r.unfilled.is_empty() {
        let _ = write!(
            h,
            "<h2>Orders not filled or not sent ({})</h2><table>",
            r.unfilled.len()
        );
        for u in &r.unfilled {
            let _ = write!(
                h,
                "<tr><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                esc(&u.time[..10.min(u.time.len())]),
                esc(&u.reason)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<p>Metrics follow backtesting.py 0.6's definitions (see tradeflow-core backtest::metrics).</p></body></html>");
    h
}
