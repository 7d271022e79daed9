//! S3 objects: bars, indicator series, charts and oversized lineage payloads.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BlobError {
    #[error("s3 {op} {key}: {source}")]
    S3 {
        op: &'static str,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("s3 object {key} is not the expected JSON: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Blobs {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Blobs {
    pub fn new(s3: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            s3,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Stores bytes with a content type.
    ///
    /// # Errors
    /// The S3 error.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| BlobError::S3 {
                op: "put",
                key: key.into(),
                source: Box::new(e),
            })?;
        Ok(())
    }

    /// Stores a value as JSON.
    ///
    /// # Errors
    /// The S3 error.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), BlobError> {
        let body = serde_json::to_vec(value).map_err(|e| BlobError::Decode {
            key: key.into(),
            source: e,
        })?;
        self.put(key, body, "application/json").await
    }

    /// Reads an object's bytes.
    ///
    /// # Errors
    /// The S3 error (including a missing key).
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| BlobError::S3 {
                op: "get",
                key: key.into(),
                source: Box::new(e),
            })?;
        let bytes = out.body.collect().await.map_err(|e| BlobError::S3 {
            op: "read",
            key: key.into(),
            source: Box::new(e),
        })?;
        Ok(bytes.to_vec())
    }

    /// Reads a JSON object.
    ///
    /// # Errors
    /// The S3 error or a decoding error.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<T, BlobError> {
        let bytes = self.get(key).await?;
        serde_json::from_slice(&bytes).map_err(|e| BlobError::Decode {
            key: key.into(),
            source: e,
        })
    }

    /// A presigned GET URL, for a viewer or an LLM that fetches images by URL.
    ///
    /// # Errors
    /// The presigning error.
    pub async fn presigned_get(&self, key: &str, ttl: Duration) -> Result<String, BlobError> {
        let cfg = PresigningConfig::expires_in(ttl).map_err(|e| BlobError::S3 {
            op: "presign",
            key: key.into(),
            source: Box::new(e),
        })?;
        let req = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(cfg)
            .await
            .map_err(|e| BlobError::S3 {
                op: "presign",
                key: key.into(),
                source: Box::new(e),
            })?;
        Ok(req.uri().to_string())
    }
}
