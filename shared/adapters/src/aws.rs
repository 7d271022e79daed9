//! AWS client construction, in one place. `aws_config` honours `AWS_ENDPOINT_URL`, so
//! the same binary talks to LocalStack or to AWS with no branches elsewhere.

use crate::aws_calls::RecordCalls;
use crate::config::{Config, ConfigError};

/// The clients and configuration a function needs, built once per cold start.
#[derive(Debug, Clone)]
pub struct Deps {
    pub config: Config,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    /// Domain events (OrderFilled, PositionClosed) go to `EVENT_BUS_NAME`.
    pub events: aws_sdk_eventbridge::Client,
}

impl Deps {
    /// Loads config and SDK clients.
    ///
    /// # Errors
    /// Missing configuration.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_from_env().await;
        Ok(Self::new(config, &sdk))
    }

    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                // LocalStack serves buckets by path, not by virtual host.
                .force_path_style(config.local_endpoint)
                .record_calls()
                .build(),
        );
        Self {
            dynamo: dynamodb_client(sdk),
            events: eventbridge_client(sdk),
            s3,
            config,
        }
    }
}

/// A DynamoDB client (with the call recorder when `TRADEFLOW_AWS_CALL_LOG` is set).
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(sdk)
            .record_calls()
            .build(),
    )
}

/// An EventBridge client (with the call recorder when `TRADEFLOW_AWS_CALL_LOG` is set).
pub fn eventbridge_client(sdk: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
    aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk)
            .record_calls()
            .build(),
    )
}

/// A Step Functions client (with the call recorder when `TRADEFLOW_AWS_CALL_LOG` is set).
pub fn sfn_client(sdk: &aws_config::SdkConfig) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(sdk)
            .record_calls()
            .build(),
    )
}

/// A Secrets Manager client (with the call recorder when `TRADEFLOW_AWS_CALL_LOG` is set).
pub fn secretsmanager_client(sdk: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(sdk)
            .record_calls()
            .build(),
    )
}
