//! analyze_chart: renders the strategy's prompt template (stored, or the built-in
//! default) and asks the strategy's analyst, with the charts for image-capable
//! providers. The rendered prompt, template id+version+source, provider, model,
//! latency, usage and the verbatim answer all go to lineage (a very large answer
//! goes to S3, with its head inline).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::llm::{AnalysisRequest, ChartAnalyst, ChartImage, Provider};
use tradeflow_adapters::prompt_store::PromptStore;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_adapters::store::s;
use tradeflow_core::analyst::{ANSWER_HEAD, ANSWER_INLINE_LIMIT, head};
use tradeflow_core::payloads::{
    AnalyzeChartOutput, ComputeIndicatorsOutput, FetchMarketDataOutput, LoadStrategyOutput,
    RenderChartsOutput,
};
use tradeflow_core::prompts::{PositionContext, PromptContext, TemplateSource, render_typed};
use tradeflow_core::strategy::Strategy;
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    fetch_market_data: FetchMarketDataOutput,
    compute_indicators: ComputeIndicatorsOutput,
    render_charts: RenderChartsOutput,
}

async fn open_position(
    deps: &Deps,
    strategy: &Strategy,
) -> Result<Option<PositionContext>, StepError> {
    let store = deps.store();
    let key = HashMap::from([
        ("strategy_id".to_string(), s(&strategy.strategy_id)),
        ("conid".to_string(), s(strategy.conid.to_string())),
    ]);
    let item: Option<serde_json::Value> = store.get(&store.tables.positions, key).await?;
    Ok(item.as_ref().and_then(PositionContext::from_item))
}

async fn handle(
    input: Input,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<AnalyzeChartOutput, StepError> {
    let strategy = &input.load_strategy.strategy;
    let (template, source) = PromptStore::new(deps.store())
        .resolve(&strategy.prompt_template, &strategy.strategy_id)
        .await?;
    let context = PromptContext::for_run(
        strategy,
        &input.fetch_market_data,
        &input.compute_indicators,
        open_position(&deps, strategy).await?,
    );
    let prompt =
        render_typed(&template.body, &context, "cannot render for this run").map_err(|e| {
            StepError::fatal(format!(
                "{} v{}: {e}",
                template.template_id, template.version
            ))
        })?;
    let provider = Provider::for_strategy(&strategy.provider, &deps.config).await?;

    let blobs = deps.blobs();
    let mut images = Vec::new();
    if provider.wants_images() {
        for chart in &input.render_charts.charts {
            let png = blobs
                .get(&chart.key)
                .await
                .map_err(|e| StepError::transient(e.to_string()))?;
            images.push(ChartImage {
                timeframe: chart.timeframe.clone(),
                png,
            });
        }
    }
    // What lineage records as shown to the analyst: only what was actually sent.
    let charts: Vec<String> = input
        .render_charts
        .charts
        .iter()
        .take(images.len())
        .map(|c| c.key.clone())
        .collect();
    let request = AnalysisRequest {
        prompt,
        images,
        close: context.close,
        indicators: context.indicators,
        previous_close: input.fetch_market_data.previous_close,
        previous: input
            .compute_indicators
            .series
            .iter()
            .filter_map(|(k, v)| v.previous.map(|x| (k.clone(), x)))
            .collect(),
    };
    let started = Instant::now();
    let response = provider.analyze(&request).await?;
    let latency_ms = started.elapsed().as_millis() as u64;

    let (answer, answer_key) = if response.answer.len() > ANSWER_INLINE_LIMIT {
        let key = format!(
            "answers/{}/{}/analyze_chart.txt",
            strategy.strategy_id, ctx.execution_name
        );
        blobs
            .put(
                &key,
                response.answer.clone().into_bytes(),
                "text/plain; charset=utf-8",
            )
            .await
            .map_err(|e| StepError::transient(e.to_string()))?;
        (head(&response.answer, ANSWER_HEAD).to_string(), Some(key))
    } else {
        (response.answer, None)
    };
    tracing::info!(
        provider = provider.kind(),
        model = %response.model,
        template = %template.template_id,
        version = template.version,
        latency_ms,
        "chart analysed"
    );
    Ok(AnalyzeChartOutput {
        provider: provider.kind().into(),
        model: response.model,
        template_id: template.template_id,
        template_version: template.version,
        template_source: match source {
            TemplateSource::Builtin => "builtin",
            TemplateSource::Store => "store",
        }
        .into(),
        prompt: request.prompt,
        answer,
        answer_key,
        charts,
        latency_ms,
        usage: response.usage,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::AnalyzeChart, handle).await
}
