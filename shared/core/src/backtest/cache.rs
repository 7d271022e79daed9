//! LLM backtests at a known cost: the key an answer is cached under, and the
//! estimate of calls and tokens printed before a run.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The cache key of an answer: the chart images, the rendered prompt and the model,
/// each hashed, so the same question to the same model is asked once. A changed
/// prompt template, chart or model is a new question.
pub fn answer_key(charts: &[&[u8]], prompt: &str, model: &str) -> String {
    let mut h = Sha256::new();
    for png in charts {
        h.update(Sha256::digest(png));
    }
    h.update(Sha256::digest(prompt.as_bytes()));
    h.update(model.as_bytes());
    hex::encode(h.finalize())
}

/// Where answers are kept between runs.
pub trait AnswerCache {
    fn get(&self, key: &str) -> Option<String>;
    /// Keeps an answer; a failure to keep it costs a call next time, nothing else.
    fn put(&mut self, key: &str, answer: &str);
}

/// What an LLM backtest may cost, at most (cached answers make it less).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostEstimate {
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Tokens OpenAI counts for one image at `detail: high`: scaled to fit 2048×2048,
/// then its short side to 768, 170 per 512-pixel tile plus 85 (OpenAI's
/// published vision pricing rule; other providers count similarly).
pub fn image_tokens(width: u32, height: u32) -> u64 {
    let (mut w, mut h) = (f64::from(width), f64::from(height));
    let fit = (2048.0 / w.max(h)).min(1.0);
    (w, h) = (w * fit, h * fit);
    let short = (768.0 / w.min(h)).min(1.0);
    (w, h) = (w * short, h * short);
    let tiles = (w / 512.0).ceil() * (h / 512.0).ceil();
    85 + 170 * tiles as u64
}

/// The estimate for `decisions` questions of `prompt_chars` characters (≈ 4 per
/// token) with `images` charts of `width`×`height` and answers of about
/// `answer_tokens`.
pub fn estimate(
    decisions: u64,
    prompt_chars: usize,
    images: u32,
    (width, height): (u32, u32),
    answer_tokens: u64,
) -> CostEstimate {
    let per_call =
        (prompt_chars as u64).div_ceil(4) + u64::from(images) * image_tokens(width, height);
    CostEstimate {
        calls: decisions,
        input_tokens: decisions * per_call,
        output_tokens: decisions * answer_tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_chart_prompt_or_model_only() {
        let base = answer_key(&[b"png"], "prompt", "gpt-4o");

        assert_eq!(base, answer_key(&[b"png"], "prompt", "gpt-4o"));
        assert_ne!(base, answer_key(&[b"png2"], "prompt", "gpt-4o"));
        assert_ne!(base, answer_key(&[b"png"], "prompt!", "gpt-4o"));
        assert_ne!(base, answer_key(&[b"png"], "prompt", "gpt-4o-mini"));
    }

    #[test]
    fn image_tokens_match_openais_worked_examples() {
        // OpenAI's examples: 1024×1024 → 765 tokens, 2048×4096 → 1105 tokens.
        assert_eq!(image_tokens(1024, 1024), 765);
        assert_eq!(image_tokens(2048, 4096), 1105);
        assert_eq!(image_tokens(1600, 900), 1105);
    }

    #[test]
    fn the_estimate_multiplies_per_call_costs() {
        let e = estimate(100, 4000, 1, (1600, 900), 150);

        assert_eq!(
            e,
            CostEstimate {
                calls: 100,
                input_tokens: 100 * (1000 + 1105),
                output_tokens: 15_000
            }
        );
    }
}
