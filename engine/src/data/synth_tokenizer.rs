//! A RoBERTa-style byte-level BPE tokenizer trained on the synthetic corpus.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::error::{DataError, DataResult};

/// RoBERTa's special tokens, in RoBERTa's id order (0..=4).
pub const SPECIAL_TOKENS: [&str; 5] = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"];

/// Trains and saves `tokenizer.json`. The corpus should be sorted and deduplicated by the caller
/// so that the merges do not depend on text order.
pub fn train_tokenizer(corpus: &[String], out: &Path) -> DataResult<()> {
    let err = |detail: String| DataError::Tokenizer {
        path: out.to_path_buf(),
        detail,
    };
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(2000)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::from(trainer);
    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer
        .train(&mut trainer, corpus.iter().cloned())
        .map_err(|e| err(format!("training failed: {e}")))?;
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| err(format!("special token {t} missing after training")))
    };
    let (cls, sep) = (id("<s>")?, id("</s>")?);
    tokenizer.with_post_processor(Some(
        RobertaProcessing::new(("</s>".into(), sep), ("<s>".into(), cls))
            .trim_offsets(true)
            .add_prefix_space(false),
    ));
    tokenizer.add_special_tokens(&specials);
    tokenizer
        .save(out, true)
        .map_err(|e| err(format!("cannot save: {e}")))?;
    Ok(())
}
