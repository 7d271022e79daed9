//! What the gateway-wide discipline costs per call, against the local stack
//! (`localstack/up.sh && source localstack/env.sh`, then
//! `cargo bench -p tradeflow-adapters --bench gateway_path --profile dev`: the
//! figures are network and DynamoDB round trips, not CPU), side by side with the
//! baselines in one run:
//!
//! - `direct`: a client pacing itself alone (what each Lambda did before);
//! - `discipline`: the same call through the DynamoDB discipline (the chosen shape);
//! - `lambda hop`: the shape not chosen, a gateway function every call goes
//!   through, measured by its floor: invoking the keep-alive through the emulator's
//!   Lambda API, minus the same work done in-process.
//!
//! Calls are spaced wider than the pacing interval, so no figure includes pacing
//! waits: only the path's own cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tradeflow_adapters::Deps;
use tradeflow_adapters::ibkr::session;
use tradeflow_adapters::ibkr::types::{OrderRequest, OrderType};
use tradeflow_adapters::ibkr::{IbkrClient, IbkrSettings};
use tradeflow_core::orders::Side;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(name: &str, samples: &mut [Duration]) -> f64 {
    samples.sort();
    let median = ms(samples[samples.len() / 2]);
    let p90 = ms(samples[samples.len() * 9 / 10]);
    println!(
        "{name:<34} n={:<3} median {median:>8.2} ms   p90 {p90:>8.2} ms",
        samples.len()
    );
    median
}

async fn timed<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Duration {
    let t = Instant::now();
    if let Err(e) = f.await {
        panic!("call failed: {e}");
    }
    t.elapsed()
}

fn order(coid: String, price: Decimal) -> OrderRequest {
    OrderRequest {
        conid: 8314,
        coid,
        order_type: OrderType::Limit,
        side: Side::Buy,
        quantity: Decimal::ONE,
        limit_price: Some(price),
        tif: "DAY".into(),
        outside_rth: false,
    }
}

#[tokio::main]
async fn main() {
    let Ok(deps) = Deps::from_env().await else {
        eprintln!("needs the local stack: localstack/up.sh && source localstack/env.sh");
        std::process::exit(2);
    };
    let settings = IbkrSettings::from_config(&deps.config).expect("settings");
    let direct = IbkrClient::new(settings.clone()).expect("client");
    let disciplined = IbkrClient::new(IbkrSettings {
        discipline: Some(Arc::new(deps.gateway_discipline(&settings))),
        ..settings.clone()
    })
    .expect("client");
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    let invoke_url = format!("{endpoint}/2015-03-31/functions/session-keepalive/invocations");
    let http = reqwest::Client::new();
    let store = deps.store();
    let gap = Duration::from_millis(200);
    let n = 40;

    // Warm-up: connections, the gateway item, the function's first build and start.
    direct.auth_status().await.expect("gateway up");
    disciplined.auth_status().await.expect("discipline up");
    http.post(&invoke_url)
        .body("{}")
        .send()
        .await
        .expect("invoke");

    let (mut d, mut g, mut hop, mut local, mut rtt) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..n {
        tokio::time::sleep(gap).await;
        d.push(timed(direct.auth_status()).await);
        tokio::time::sleep(gap).await;
        g.push(timed(disciplined.auth_status()).await);
        rtt.push(
            timed(
                deps.dynamo
                    .get_item()
                    .table_name(&deps.config.tables.gateway)
                    .key(
                        "gateway",
                        aws_sdk_dynamodb::types::AttributeValue::S(settings.base_url.clone()),
                    )
                    .consistent_read(true)
                    .send(),
            )
            .await,
        );
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let t = Instant::now();
            let state = session::keep_alive(&direct, chrono::Utc::now()).await;
            session::record(&store, &state).await.expect("record");
            local.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let t = Instant::now();
            let r = http
                .post(&invoke_url)
                .body("{}")
                .send()
                .await
                .expect("invoke");
            assert!(r.status().is_success(), "invoke: {}", r.status());
            r.bytes().await.expect("invoke body");
            hop.push(t.elapsed());
        }
    }
    // A resting limit 2 % under the market: no question but the suppressed o354.
    let quote = direct.snapshot(&[8314]).await.expect("snapshot")[0];
    let price = Decimal::from_f64_retain(quote.price().expect("a price") * 0.98)
        .expect("price")
        .round_dp(2);
    let run = chrono::Utc::now().format("%H%M%S").to_string();
    let (mut od, mut og) = (vec![], vec![]);
    for i in 0..10 {
        tokio::time::sleep(gap).await;
        od.push(timed(direct.place_order(&order(format!("bench-{run}-d{i}"), price))).await);
        tokio::time::sleep(gap).await;
        og.push(timed(disciplined.place_order(&order(format!("bench-{run}-g{i}"), price))).await);
    }

    println!("gateway path, local stack (fake gateway, LocalStack DynamoDB), one caller");
    let md = summary("direct: auth status", &mut d);
    let mg = summary("discipline: auth status", &mut g);
    let mo_d = summary("direct: place order (no question)", &mut od);
    let mo_g = summary("discipline: place order", &mut og);
    let ml = summary("keep-alive run, in-process", &mut local);
    let mh = summary("keep-alive run, Lambda invoke", &mut hop);
    let mr = summary("one DynamoDB GetItem (reference)", &mut rtt);
    println!();
    println!(
        "added per call: discipline {:.2} ms ({:.1}x direct, {:.1} DynamoDB round trips); order window {:.2} ms ({:.1}x)",
        mg - md,
        mg / md,
        (mg - md) / mr,
        mo_g - mo_d,
        mo_g / mo_d
    );
    println!(
        "a gateway function would add at least the invoke hop: {:.2} ms per call ({:.1}x the discipline's)",
        mh - ml,
        (mh - ml) / (mg - md)
    );
    // Leave the bench's resting orders cancelled.
    for o in direct.live_orders().await.unwrap_or_default() {
        if o.order_ref
            .as_deref()
            .is_some_and(|r| r.starts_with("bench-"))
            && o.status != "Cancelled"
        {
            let _ = direct.cancel_order(&o.order_id.to_string()).await;
        }
    }
}
