//! api: tradeflow's HTTP API and lineage viewer, one `lambda_http` function behind
//! API Gateway's HTTP API (locally: the HTTP front of localstack/executor).

mod app;
mod auth;
mod body;
mod catalog;
mod error;
mod lineage_api;
mod page;
mod repo;
mod stats;
mod strategies;
mod trading;
mod viewer;

use std::sync::Arc;

use lambda_http::{Error, Request, service_fn};
use tradeflow_adapters::Deps;
use tradeflow_adapters::schedules::Schedules;

use crate::app::{ApiSettings, App};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let deps = Deps::for_function("api").await?;
    let sdk = deps.sdk.clone();
    let settings =
        ApiSettings::load(&deps, &tradeflow_adapters::aws::secretsmanager_client(&sdk)).await?;
    let schedules = Schedules {
        events: tradeflow_adapters::aws::eventbridge_client(&sdk),
        prefix: deps.config.rule_prefix.clone(),
        bus: deps.config.event_bus_name.clone(),
        state_machine_arn: settings.state_machine_arn.clone(),
        role_arn: settings.events_role_arn.clone(),
    };
    let app = Arc::new(App {
        store: deps.store(),
        sfn: tradeflow_adapters::aws::sfn_client(&sdk),
        views: viewer::environment()?,
        schedules,
        settings,
        deps,
    });
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(app.handle(req).await) }
    }))
    .await
}
