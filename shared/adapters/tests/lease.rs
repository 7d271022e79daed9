//! The IBKR submission lease against LocalStack's DynamoDB (ignored in the unit run;
//! `tests/run.sh` runs it with `--ignored` once the local stack is up).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use tradeflow_adapters::Deps;
use tradeflow_adapters::lease::{LEASE_KEY, SubmissionLease};
use tradeflow_adapters::store::s;

/// The two tests share the one lease item: they take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn deps() -> Deps {
    Deps::from_env()
        .await
        .expect("local stack env (source localstack/env.sh)")
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn concurrent_submissions_hold_the_session_one_at_a_time() {
    let _serial = SERIAL.lock().await;
    let deps = deps().await;
    let lease = deps.submission_lease();
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));

    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let (lease, inside, most) = (lease.clone(), inside.clone(), most.clone());
            tokio::spawn(async move {
                let holder = format!("tf-lease-test-{i}");
                lease.acquire(&holder).await.expect("lease within the wait");
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lease.release(&holder).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }

    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn an_expired_lease_of_a_crashed_holder_is_taken_over() {
    let _serial = SERIAL.lock().await;
    let deps = deps().await;
    deps.dynamo
        .put_item()
        .table_name(&deps.config.tables.orders)
        .item("order_id", s(LEASE_KEY))
        .item("holder", s("tf-crashed"))
        .item("until_ms", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let lease = SubmissionLease::new(deps.dynamo.clone(), deps.config.tables.orders.clone());

    let started = std::time::Instant::now();
    lease.acquire("tf-next").await.unwrap();
    lease.release("tf-next").await;

    assert!(started.elapsed() < Duration::from_secs(5));
    let left = deps
        .dynamo
        .get_item()
        .table_name(&deps.config.tables.orders)
        .key("order_id", s(LEASE_KEY))
        .send()
        .await
        .unwrap();
    assert!(left.item.is_none(), "released lease still there");
}
