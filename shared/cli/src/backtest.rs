//! `tradeflow backtest`: a strategy over history with the workflow's own core code
//! (`tradeflow_core::backtest`), reported as JSON, a self-contained HTML page and an
//! equity/drawdown PNG. LLM analysts answer through the live providers, with every
//! answer cached by (chart, prompt, model) and a call budget.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Args;
use rust_decimal::Decimal;
use tradeflow_adapters::config::Secret;
use tradeflow_adapters::llm::{
    AnalysisRequest, BedrockClient, BedrockSettings, ChartAnalyst, ChartImage, OpenAiClient,
    OpenAiSettings, Provider, RulesAnalyst as LiveRules,
};
use tradeflow_charts::{ChartOptions, chart_title, render_equity_png, render_png};
use tradeflow_core::backtest::cache::{AnswerCache, answer_key, estimate};
use tradeflow_core::backtest::{
    Analyst, AnalystStop, Answer, BacktestConfig, BacktestResult, CommissionModel, DecisionContext,
    FillMode, RulesAnalyst, SizingMode, run,
};
use tradeflow_core::market::Bar;
use tradeflow_core::prompts::{DEFAULT_TEMPLATE, PositionContext, PromptContext, render_typed};
use tradeflow_core::strategy::Strategy;

use crate::backtest_report;
use crate::indicators::read_bars_csv;

#[derive(Args)]
pub struct BacktestArgs {
    /// Strategy JSON file (the API's strategy body).
    #[arg(long)]
    strategy: PathBuf,
    /// OHLCV CSV (date,open,high,low,close,volume).
    #[arg(long)]
    csv: PathBuf,
    /// First bar to include (YYYY-MM-DD).
    #[arg(long)]
    from: Option<NaiveDate>,
    /// Last bar to include (YYYY-MM-DD).
    #[arg(long)]
    to: Option<NaiveDate>,
    /// `limit` (as live: DAY limits at the signal's entry) or `next-open` (market
    /// orders at the next bar's open).
    #[arg(long, default_value = "limit")]
    fill: String,
    /// `risk` (as live) or `fraction:F` (F of equity per entry, e.g. fraction:0.9999).
    #[arg(long, default_value = "risk")]
    sizing: String,
    /// `ibkr` (IBKR Pro Fixed), `percent:R` (e.g. percent:0.002) or `none`.
    #[arg(long, default_value = "ibkr")]
    commission: String,
    /// Starting cash (default: the strategy's risk.capital).
    #[arg(long)]
    cash: Option<Decimal>,
    /// Leave out the position monitor's stop and target exits.
    #[arg(long)]
    no_protective_exits: bool,
    /// Directory for report.json, report.html and equity.png.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Prints the JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// Runs the backtest this many times and reports the median time (benchmarks).
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// LLM analysts: at most this many calls (cached answers are free); the run
    /// stops with a partial report when it is spent.
    #[arg(long)]
    max_calls: Option<u32>,
    /// LLM analysts: where answers are cached.
    #[arg(
        long,
        env = "TRADEFLOW_ANSWER_CACHE",
        default_value = ".tradeflow-answers"
    )]
    cache: PathBuf,
    /// LLM analysts: the prompt template body (default: the built-in template).
    #[arg(long)]
    template: Option<PathBuf>,
}

fn parse_config(args: &BacktestArgs) -> anyhow::Result<BacktestConfig> {
    let fill = match args.fill.as_str() {
        "limit" => FillMode::Limit,
        "next-open" | "next_open" => FillMode::NextOpen,
        other => bail!("--fill {other:?}: expected limit or next-open"),
    };
    let sizing = match args.sizing.split_once(':') {
        None if args.sizing == "risk" => SizingMode::Risk,
        Some(("fraction", f)) => {
            let fraction: Decimal = f
                .parse()
                .with_context(|| format!("--sizing fraction {f:?}"))?;
            if fraction <= Decimal::ZERO || fraction > Decimal::ONE {
                bail!("--sizing fraction must be in (0, 1], got {fraction}");
            }
            SizingMode::EquityFraction { fraction }
        }
        _ => bail!("--sizing {:?}: expected risk or fraction:F", args.sizing),
    };
    let commission = match args.commission.split_once(':') {
        None if args.commission == "ibkr" => CommissionModel::IbkrFixed,
        None if args.commission == "none" => CommissionModel::None,
        Some(("percent", r)) => CommissionModel::Percent {
            rate: r
                .parse()
                .with_context(|| format!("--commission percent {r:?}"))?,
        },
        _ => bail!(
            "--commission {:?}: expected ibkr, percent:R or none",
            args.commission
        ),
    };
    Ok(BacktestConfig {
        fill,
        sizing,
        commission,
        protective_exits: !args.no_protective_exits,
    })
}

fn in_range(bars: Vec<Bar>, from: Option<NaiveDate>, to: Option<NaiveDate>) -> Vec<Bar> {
    bars.into_iter()
        .filter(|b| from.is_none_or(|d| b.date() >= d) && to.is_none_or(|d| b.date() <= d))
        .collect()
}

/// Answers kept as one file per key.
struct DirCache(PathBuf);

impl AnswerCache for DirCache {
    fn get(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(format!("{key}.txt"))).ok()
    }

    fn put(&mut self, key: &str, answer: &str) {
        let _ = std::fs::create_dir_all(&self.0)
            .and_then(|()| std::fs::write(self.0.join(format!("{key}.txt")), answer));
    }
}

/// An LLM analyst: the live provider, asked with the live prompt and chart.
struct LlmAnalyst {
    provider: Provider,
    model: String,
    template: String,
    cache: DirCache,
    max_calls: Option<u32>,
    calls: u32,
}

impl Analyst for LlmAnalyst {
    fn answer(&mut self, ctx: &DecisionContext<'_>) -> Result<Answer, AnalystStop> {
        let s = ctx.strategy;
        let last = ctx.bars[ctx.bars.len() - 1];
        let context = PromptContext {
            strategy_id: s.strategy_id.clone(),
            symbol: s.symbol.clone(),
            currency: s.currency.clone(),
            timeframe: s.timeframe.as_str().into(),
            as_of: last.time().to_rfc3339(),
            close: last.close,
            volume: last.volume,
            indicators: ctx.latest.clone(),
            risk: s.risk.clone(),
            position: ctx.position.map(|p| PositionContext {
                quantity: p.quantity.try_into().unwrap_or(0.0),
                avg_cost: p.avg_cost.try_into().unwrap_or(0.0),
            }),
        };
        let prompt = render_typed(&self.template, &context, "cannot render for this bar")
            .map_err(|e| AnalystStop::Failed(e.to_string()))?;
        let mut images = Vec::new();
        if self.provider.wants_images() {
            let opts = ChartOptions {
                title: chart_title(&s.symbol, s.timeframe, ctx.bars),
                ..ChartOptions::default()
            };
            let png = render_png(ctx.bars, ctx.series, &opts)
                .map_err(|e| AnalystStop::Failed(format!("chart: {e}")))?;
            images.push(ChartImage {
                timeframe: s.timeframe.as_str().into(),
                png,
            });
        }
        let pngs: Vec<&[u8]> = images.iter().map(|i| i.png.as_slice()).collect();
        let key = answer_key(&pngs, &prompt, &self.model);
        if let Some(text) = self.cache.get(&key) {
            return Ok(Answer {
                text,
                model: self.model.clone(),
                cached: true,
            });
        }
        if self.max_calls.is_some_and(|max| self.calls >= max) {
            return Err(AnalystStop::Budget(format!(
                "--max-calls {} reached",
                self.calls
            )));
        }
        self.calls += 1;
        let request = AnalysisRequest {
            prompt,
            images,
            close: last.close,
            indicators: ctx.latest.clone(),
            previous_close: ctx.bars.len().checked_sub(2).map(|i| ctx.bars[i].close),
            previous: ctx.previous.clone(),
        };
        let handle = tokio::runtime::Handle::current();
        let response =
            tokio::task::block_in_place(|| handle.block_on(self.provider.analyze(&request)))
                .map_err(|e| AnalystStop::Failed(e.to_string()))?;
        self.cache.put(&key, &response.answer);
        Ok(Answer {
            text: response.answer,
            model: response.model,
            cached: false,
        })
    }
}

async fn llm_analyst(strategy: &Strategy, args: &BacktestArgs) -> anyhow::Result<LlmAnalyst> {
    let spec = &strategy.provider;
    let (provider, model) = match spec.kind.as_str() {
        "openai" => {
            let base = spec
                .base_url
                .clone()
                .or_else(|| std::env::var("OPENAI_BASE_URL").ok())
                .context("provider.base_url or OPENAI_BASE_URL is needed for an openai backtest")?;
            let mut settings = OpenAiSettings::new(base);
            if let Some(m) = &spec.model {
                settings.model.clone_from(m);
            }
            settings.api_key = Secret::new(std::env::var("OPENAI_API_KEY").unwrap_or_default());
            settings.structured_output = spec.structured_output;
            let model = settings.model.clone();
            (Provider::OpenAi(OpenAiClient::new(settings)?), model)
        }
        "bedrock" => {
            let sdk = aws_config::load_from_env().await;
            let mut settings = BedrockSettings {
                endpoint_url: spec.base_url.clone(),
                ..BedrockSettings::default()
            };
            if let Some(m) = &spec.model {
                settings.model.clone_from(m);
            }
            let model = settings.model.clone();
            (Provider::Bedrock(BedrockClient::new(&sdk, settings)), model)
        }
        _ => (Provider::Rules(LiveRules::default()), "rules".into()),
    };
    let template = match &args.template {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?,
        None => DEFAULT_TEMPLATE.to_string(),
    };
    Ok(LlmAnalyst {
        provider,
        model,
        template,
        cache: DirCache(args.cache.clone()),
        max_calls: args.max_calls,
        calls: 0,
    })
}

fn write_reports(result: &BacktestResult, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let png = render_equity_png(
        &result.times,
        &result.equity,
        backtest_report::buy_and_hold(result).as_deref(),
        &ChartOptions {
            width: 1400,
            height: 700,
            title: format!(
                "{} · {} · equity and drawdown",
                result.strategy_id, result.symbol
            ),
        },
    )?;
    std::fs::write(dir.join("equity.png"), &png)?;
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(result)?)?;
    std::fs::write(dir.join("report.html"), backtest_report::html(result, &png))?;
    Ok(())
}

pub async fn run_backtest(args: BacktestArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.strategy)
        .with_context(|| format!("read {}", args.strategy.display()))?;
    let mut strategy: Strategy = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a strategy", args.strategy.display()))?;
    if let Some(cash) = args.cash {
        strategy.risk.capital = cash;
    }
    let config = parse_config(&args)?;
    let bars = in_range(read_bars_csv(&args.csv)?, args.from, args.to);
    if bars.is_empty() {
        bail!("no bars in the chosen range");
    }
    let started = Instant::now();
    let result = if strategy.provider.kind == "rules" {
        let mut times = Vec::new();
        let mut result = None;
        for _ in 0..args.repeat.max(1) {
            let one = Instant::now();
            result = Some(run(&strategy, &bars, &config, &mut RulesAnalyst)?);
            times.push(one.elapsed().as_secs_f64());
        }
        if args.repeat > 1 {
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            eprintln!(
                "engine: median {:.3} ms over {} runs, {:.0} bars/s",
                median * 1e3,
                times.len(),
                bars.len() as f64 / median
            );
        }
        result.context("no run")?
    } else {
        let analyst = llm_analyst(&strategy, &args).await?;
        let warm = strategy
            .indicators
            .iter()
            .map(|s| s.bars_needed())
            .max()
            .unwrap_or(1);
        let decisions = bars.len().saturating_sub(warm) as u64;
        let prompt_chars = render_typed(&analyst.template, &PromptContext::sample(), "sample")
            .map(|p| p.len())
            .unwrap_or(4000);
        let images = u32::from(analyst.provider.wants_images());
        let e = estimate(decisions, prompt_chars, images, (1600, 900), 150);
        eprintln!(
            "estimate: at most {} calls to {} ({} input + {} output tokens); cached answers in {} cost nothing{}",
            e.calls,
            analyst.model,
            e.input_tokens,
            e.output_tokens,
            args.cache.display(),
            args.max_calls
                .map(|m| format!("; --max-calls {m}"))
                .unwrap_or_default()
        );
        let mut analyst = analyst;
        run(&strategy, &bars, &config, &mut analyst)?
    };
    let elapsed = started.elapsed();
    if let Some(dir) = &args.out {
        write_reports(&result, dir)?;
        eprintln!("report: {}", dir.join("report.html").display());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", backtest_report::text(&result));
    }
    eprintln!(
        "{} bars in {:.1} ms ({:.0} bars/s)",
        bars.len(),
        elapsed.as_secs_f64() * 1e3,
        bars.len() as f64 / elapsed.as_secs_f64()
    );
    if let Some(why) = &result.stopped_early {
        eprintln!("stopped early: {why}");
    }
    Ok(())
}
