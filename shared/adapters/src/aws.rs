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
    /// The SDK configuration the clients were built from: a function building more
    /// clients uses it instead of loading the environment again at cold start.
    pub sdk: aws_config::SdkConfig,
}

impl Deps {
    /// Loads the configuration of every function and SDK clients: for tools and
    /// tests (a function calls [`Deps::for_function`]).
    ///
    /// # Errors
    /// Missing configuration.
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::load(Config::from_env()?).await
    }

    /// Loads `function`'s configuration (only the variables it declares), reads the
    /// gateway's URL and account from SSM when deployed, refuses on AWS a gateway it
    /// must not reach, and builds the SDK clients. Once per cold start.
    ///
    /// # Errors
    /// Missing or invalid configuration, an unreadable parameter, a refused gateway.
    pub async fn for_function(function: &str) -> Result<Self, ConfigError> {
        Self::load(Config::for_function(function)?).await
    }

    async fn load(mut config: Config) -> Result<Self, ConfigError> {
        let sdk = aws_config::load_from_env().await;
        config.resolve_gateway(&ssm_client(&sdk)).await?;
        config.check_gateway()?;
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
            sdk: sdk.clone(),
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

/// An SSM client (with the call recorder when `TRADEFLOW_AWS_CALL_LOG` is set).
pub fn ssm_client(sdk: &aws_config::SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(sdk)
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
