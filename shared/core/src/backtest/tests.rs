//! The engine's invariants: no look-ahead, money adds up, fills as documented.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use super::*;

const OHLCV: &str = include_str!("../../../../tests/data/ohlcv.csv");

fn csv_bars() -> Vec<Bar> {
    OHLCV
        .lines()
        .skip(1)
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            let num = |i: usize| c[i].parse::<f64>().unwrap();
            let t = NaiveDate::parse_from_str(c[0], "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis();
            Bar {
                t,
                open: num(1),
                high: num(2),
                low: num(3),
                close: num(4),
                volume: num(5),
            }
        })
        .collect()
}

fn strategy(rules: serde_json::Value, indicators: serde_json::Value) -> Strategy {
    serde_json::from_value(serde_json::json!({
        "strategy_id": "bt", "name": "bt", "conid": 265598, "symbol": "TEST",
        "indicators": indicators,
        "provider": {"kind": "rules", "rules": rules},
        "risk": {"capital": "100000", "risk_per_trade": "0.01", "max_position_value": "1000000000",
                 "max_open_positions": 1, "daily_loss_limit": "1000000", "min_confidence": 0.5}
    }))
    .unwrap()
}

fn crossover(stop: f64, target: f64) -> Strategy {
    strategy(
        serde_json::json!({
            "buy": ["sma_5 crosses above sma_12"], "sell": ["sma_5 crosses below sma_12"],
            "stop": {"percent": stop}, "target": {"percent": target}
        }),
        serde_json::json!([{"kind": "sma", "period": 5}, {"kind": "sma", "period": 12}]),
    )
}

fn configs() -> Vec<BacktestConfig> {
    let mut out = Vec::new();
    for fill in [FillMode::Limit, FillMode::NextOpen] {
        for sizing in [
            SizingMode::Risk,
            SizingMode::EquityFraction {
                fraction: dec!(0.9999),
            },
        ] {
            for commission in [
                CommissionModel::IbkrFixed,
                CommissionModel::Percent { rate: dec!(0.002) },
            ] {
                out.push(BacktestConfig {
                    fill,
                    sizing,
                    commission,
                    protective_exits: true,
                });
            }
        }
    }
    out
}

/// An analyst that answers from a script and records the last bar it was shown.
struct Scripted {
    answers: Vec<(usize, &'static str)>,
    seen: Vec<i64>,
    offset: usize,
}

impl Analyst for Scripted {
    fn answer(&mut self, ctx: &DecisionContext<'_>) -> Result<Answer, AnalystStop> {
        let last = ctx.bars[ctx.bars.len() - 1];
        self.seen.push(last.t);
        let t = self.seen.len() - 1 + self.offset;
        let text = self
            .answers
            .iter()
            .find(|(at, _)| *at == t)
            .map_or(r#"{"action":"HOLD","confidence":0}"#, |(_, a)| a);
        Ok(Answer {
            text: text.into(),
            model: "script".into(),
            cached: false,
        })
    }
}

fn bar(day: i64, open: f64, high: f64, low: f64, close: f64) -> Bar {
    Bar {
        t: 1_704_067_200_000 + day * 86_400_000,
        open,
        high,
        low,
        close,
        volume: 1000.0,
    }
}

#[test]
fn cutting_off_the_future_changes_nothing_before_the_cut() {
    let bars = csv_bars();
    let s = crossover(0.05, 0.1);
    for config in configs() {
        let full = run(&s, &bars, &config, &mut RulesAnalyst).unwrap();
        assert!(full.trades.len() >= 3, "{config:?}: the crossover trades");
        for cut in [40, 97, 150, 233] {
            let part = run(&s, &bars[..cut], &config, &mut RulesAnalyst).unwrap();

            assert_eq!(
                part.equity[..],
                full.equity[..cut],
                "{config:?} cut at {cut}"
            );
            let closed_before: Vec<_> = full.trades.iter().filter(|t| t.exit_bar < cut).collect();
            assert_eq!(
                part.trades.iter().collect::<Vec<_>>(),
                closed_before,
                "{config:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn the_analyst_sees_only_bars_up_to_the_decision_bar() {
    let bars = csv_bars();
    let mut s = crossover(0.05, 0.1);
    s.bars = 60;
    let mut spy = Scripted {
        answers: vec![],
        seen: vec![],
        offset: 0,
    };

    let r = run(&s, &bars, &BacktestConfig::default(), &mut spy).unwrap();

    let first = r.first_trading_bar.unwrap();
    assert_eq!(first, 11, "sma_12 is warm on the 12th bar");
    let expected: Vec<i64> = bars[first..bars.len() - 1].iter().map(|b| b.t).collect();
    assert_eq!(spy.seen, expected);
}

#[test]
fn money_adds_up_under_every_fill_rule_sizing_and_commission() {
    let bars = csv_bars();
    let s = crossover(0.03, 0.06);
    for config in configs() {
        let r = run(&s, &bars, &config, &mut RulesAnalyst).unwrap();

        let realised: Decimal = r.trades.iter().map(|t| t.pnl).sum();
        let open_commission = r.open_position.as_ref().map_or(Decimal::ZERO, |p| {
            config.commission.commission(p.quantity, p.entry_price)
        });
        let unrealised = r.open_position.as_ref().map_or(0.0, |p| p.unrealized_pnl);
        let expected = f(r.initial_equity + realised - open_commission) + unrealised;
        assert!(
            (r.metrics.equity_final - expected).abs() < 1e-6,
            "{config:?}: {} vs {expected}",
            r.metrics.equity_final
        );
        for t in &r.trades {
            let gross = (t.exit_price - t.entry_price) * t.quantity;
            assert_eq!(t.pnl, gross - t.commission, "{config:?}: {t:?}");
            let fee = |p| config.commission.commission(t.quantity, p);
            assert_eq!(t.commission, fee(t.entry_price) + fee(t.exit_price));
            assert!(t.exit_bar > t.entry_bar || t.exit_reason == purpose::STOP_EXIT);
        }
        assert!(
            r.trades
                .iter()
                .any(|t| t.exit_reason != purpose::SIGNAL_EXIT),
            "{config:?}: stops or targets fire"
        );
    }
}

#[test]
fn next_open_fills_the_bar_after_the_signal_at_its_open() {
    let bars: Vec<Bar> = (0..6)
        .map(|d| {
            bar(
                d,
                100.0 + d as f64,
                102.0 + d as f64,
                99.0 + d as f64,
                101.0 + d as f64,
            )
        })
        .collect();
    let s = crossover(0.05, 0.1);
    let mut script = Scripted {
        answers: vec![
            (
                1,
                r#"{"action":"BUY","entry":102,"stop":97,"target":112,"confidence":0.9,"reasoning":"go"}"#,
            ),
            (
                3,
                r#"{"action":"SELL","entry":104,"stop":109,"target":94,"confidence":0.9,"reasoning":"out"}"#,
            ),
        ],
        seen: vec![],
        offset: 0,
    };
    let mut s = s;
    s.indicators =
        serde_json::from_value(serde_json::json!([{"kind": "sma", "period": 1}])).unwrap();
    s.provider.rules = None;
    let config = BacktestConfig {
        fill: FillMode::NextOpen,
        sizing: SizingMode::EquityFraction {
            fraction: dec!(0.5),
        },
        commission: CommissionModel::IbkrFixed,
        protective_exits: true,
    };

    let r = run(&s, &bars, &config, &mut script).unwrap();

    assert_eq!(r.trades.len(), 1);
    let t = &r.trades[0];
    // Decided at bar 1's close, bought at bar 2's open (102) with half of 100000:
    // floor(50000 / 102.005) = 490 shares; sold at bar 4's open (104).
    assert_eq!(
        (t.entry_bar, t.exit_bar, t.entry_price, t.exit_price),
        (2, 4, dec!(102), dec!(104))
    );
    assert_eq!(t.quantity, dec!(490));
    assert_eq!(t.commission, dec!(2.45) + dec!(2.45));
    assert_eq!(t.pnl, dec!(980) - dec!(4.90));
    // 1% risk: the stop was 5 below the signal's entry.
    assert!((t.r_multiple.unwrap() - 975.10 / (490.0 * 5.0)).abs() < 1e-9);
}

#[test]
fn a_bar_that_touches_stop_and_target_stops_out_and_a_touched_limit_does_not_fill() {
    let bars = vec![
        bar(0, 100.0, 101.0, 99.0, 100.0),
        bar(1, 100.0, 101.0, 99.0, 100.0),
        // The entry limit 100 is only touched: no fill.
        bar(2, 100.5, 101.0, 100.0, 100.5),
        // Traded through: filled at 100.
        bar(3, 100.5, 101.0, 99.5, 100.2),
        // Touches the stop (95) and the target (110): stopped.
        bar(4, 100.0, 111.0, 94.0, 100.0),
        bar(5, 100.0, 101.0, 99.0, 100.0),
    ];
    let buy =
        r#"{"action":"BUY","entry":100,"stop":95,"target":110,"confidence":0.9,"reasoning":"go"}"#;
    let mut s = crossover(0.05, 0.1);
    s.indicators =
        serde_json::from_value(serde_json::json!([{"kind": "sma", "period": 1}])).unwrap();
    s.provider.rules = None;
    let mut script = Scripted {
        answers: vec![(1, buy), (2, buy)],
        seen: vec![],
        offset: 0,
    };

    let r = run(&s, &bars, &BacktestConfig::default(), &mut script).unwrap();

    assert_eq!(r.unfilled.len(), 1, "{:?}", r.unfilled);
    assert_eq!(r.unfilled[0].bar, 2);
    assert_eq!(r.trades.len(), 1);
    let t = &r.trades[0];
    assert_eq!(
        (t.entry_bar, t.entry_price, t.exit_bar, t.exit_price),
        (3, dec!(100), 4, dec!(95))
    );
    assert_eq!(t.exit_reason, purpose::STOP_EXIT);
    // Risk sizing as live: 1000 / 5 = 200 shares.
    assert_eq!(t.quantity, dec!(200));
    assert!((t.r_multiple.unwrap() - (-1000.0 - 2.0) / 1000.0).abs() < 1e-9);
}

#[test]
fn a_spent_call_budget_ends_the_run_with_what_was_decided() {
    struct Budget(u32);
    impl Analyst for Budget {
        fn answer(&mut self, ctx: &DecisionContext<'_>) -> Result<Answer, AnalystStop> {
            if self.0 == 0 {
                return Err(AnalystStop::Budget("--max-calls 5 reached".into()));
            }
            self.0 -= 1;
            RulesAnalyst.answer(ctx)
        }
    }
    let bars = csv_bars();

    let r = run(
        &crossover(0.05, 0.1),
        &bars,
        &BacktestConfig::default(),
        &mut Budget(5),
    )
    .unwrap();

    assert_eq!(r.decisions.decisions, 5);
    assert!(r.stopped_early.unwrap().contains("--max-calls 5"));
    assert_eq!(r.equity.len(), bars.len());
}
