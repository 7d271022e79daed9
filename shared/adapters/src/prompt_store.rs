//! Prompt templates in DynamoDB (`PROMPTS_TABLE`: pk `template_id` S, sk `version` N).
//! A version is written once with a conditional put and never updated, so the
//! template id+version a signal carries always names the exact text that was sent.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use thiserror::Error;
use tradeflow_core::StepError;
use tradeflow_core::prompts::{
    PromptError, PromptTemplate, TemplateRef, TemplateSource, choose_template,
};

use crate::step::now_rfc3339;
use crate::store::{Store, StoreError, s};

#[derive(Debug, Error)]
pub enum PromptStoreError {
    #[error(transparent)]
    Invalid(#[from] PromptError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("template {template_id}: version {version} was taken by a concurrent save")]
    VersionTaken { template_id: String, version: u32 },
}

impl From<PromptStoreError> for StepError {
    fn from(e: PromptStoreError) -> Self {
        match e {
            PromptStoreError::Store(e) => e.into(),
            PromptStoreError::VersionTaken { .. } => StepError::transient(e.to_string()),
            PromptStoreError::Invalid(_) => StepError::fatal(e.to_string()),
        }
    }
}

/// A template to save as the next version of its id.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub template_id: String,
    pub scope: String,
    pub language: String,
    pub body: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PromptStore {
    store: Store,
}

impl PromptStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn table(&self) -> &str {
        &self.store.tables.prompts
    }

    /// Reads the newest version of a template.
    ///
    /// # Errors
    /// The DynamoDB error or a malformed item.
    pub async fn latest(&self, template_id: &str) -> Result<Option<PromptTemplate>, StoreError> {
        let mut items: Vec<PromptTemplate> = self
            .store
            .query(
                self.table(),
                None,
                "template_id",
                template_id,
                true,
                Some(1),
            )
            .await?;
        Ok(items.drain(..).next())
    }

    /// Reads one version of a template.
    ///
    /// # Errors
    /// The DynamoDB error or a malformed item.
    pub async fn get(
        &self,
        template_id: &str,
        version: u32,
    ) -> Result<Option<PromptTemplate>, StoreError> {
        let key = HashMap::from([
            ("template_id".to_string(), s(template_id)),
            (
                "version".to_string(),
                AttributeValue::N(version.to_string()),
            ),
        ]);
        self.store.get(self.table(), key).await
    }

    /// Validates a template (rendering it against sample contexts) and saves it as
    /// the next version of its id.
    ///
    /// # Errors
    /// `Invalid` for a template that does not render, `VersionTaken` when concurrent
    /// saves kept winning the next version, or the DynamoDB error.
    pub async fn save(&self, new: NewTemplate) -> Result<PromptTemplate, PromptStoreError> {
        let mut template = PromptTemplate {
            template_id: new.template_id,
            version: 1,
            scope: new.scope,
            language: new.language,
            body: new.body,
            description: new.description,
            created_at: now_rfc3339(),
        };
        template.validate()?;
        for _ in 0..3 {
            template.version = self
                .latest(&template.template_id)
                .await?
                .map_or(1, |t| t.version + 1);
            match self
                .store
                .put(self.table(), &template, Some("version"))
                .await
            {
                Ok(()) => {
                    tracing::info!(template_id = %template.template_id, version = template.version, "prompt template saved");
                    return Ok(template);
                }
                Err(StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PromptStoreError::VersionTaken {
            template_id: template.template_id,
            version: template.version,
        })
    }

    /// Finds the template a strategy's `prompt_template` names (`id` or `id@version`):
    /// the stored one if any, else the built-in default for the default id.
    ///
    /// # Errors
    /// An invalid reference, a template out of the strategy's scope, an unknown id,
    /// or the DynamoDB error.
    pub async fn resolve(
        &self,
        reference: &str,
        strategy_id: &str,
    ) -> Result<(PromptTemplate, TemplateSource), PromptStoreError> {
        let r = TemplateRef::parse(reference)?;
        let stored = match r.version {
            Some(v) => self.get(&r.template_id, v).await?,
            None => self.latest(&r.template_id).await?,
        };
        Ok(choose_template(&r, stored, strategy_id)?)
    }
}
