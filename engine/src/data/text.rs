//! Tokenisation through a Hugging Face `tokenizer.json`, and MLM masking with
//! `DataCollatorForLanguageModeling` semantics.

use std::path::{Path, PathBuf};

use rand::Rng;
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use super::error::{DataError, DataResult};

/// Label value ignored by the MLM loss.
pub const IGNORE_INDEX: i64 = -100;

/// One text, padded and truncated to `max_len` with special tokens added.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    /// Special tokens and padding: never masked by MLM.
    pub special: Vec<bool>,
}

/// The reference's `tokenizer(text, padding="max_length", truncation=True, max_length=L)`.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    max_len: usize,
    pad_id: u32,
    mask_id: u32,
    vocab_size: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`. The pad and mask tokens are `<pad>`/`<mask>` (RoBERTa) or
    /// `[PAD]`/`[MASK]` (BERT).
    pub fn from_file(path: &Path, max_len: usize) -> DataResult<Self> {
        let err = |detail: String| DataError::Tokenizer {
            path: path.to_path_buf(),
            detail,
        };
        if max_len < 2 {
            return Err(err(format!(
                "max_text_len {max_len} leaves no room for text"
            )));
        }
        let mut inner = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        let find = |names: &[&str]| names.iter().find_map(|n| inner.token_to_id(n));
        let pad_id = find(&["<pad>", "[PAD]"])
            .ok_or_else(|| err("no padding token (<pad> or [PAD]) in the vocabulary".into()))?;
        let pad_token = inner.id_to_token(pad_id).unwrap_or_default();
        let mask_id = find(&["<mask>", "[MASK]"])
            .ok_or_else(|| err("no mask token (<mask> or [MASK]) in the vocabulary".into()))?;
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| err(e.to_string()))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_len),
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        let vocab_size = inner.get_vocab_size(true);
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            max_len,
            pad_id,
            mask_id,
            vocab_size,
        })
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// `len(tokenizer)`: the vocabulary with added tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn pad_id(&self) -> i64 {
        self.pad_id as i64
    }

    pub fn mask_id(&self) -> i64 {
        self.mask_id as i64
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    pub fn encode(&self, text: &str) -> DataResult<Encoded> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| DataError::Tokenizer {
                path: self.path.clone(),
                detail: format!("cannot encode {text:?}: {e}"),
            })?;
        Ok(Encoded {
            ids: enc.get_ids().iter().map(|&i| i as i64).collect(),
            attention_mask: enc.get_attention_mask().iter().map(|&i| i as i64).collect(),
            special: enc
                .get_special_tokens_mask()
                .iter()
                .map(|&s| s != 0)
                .collect(),
        })
    }

    /// Decodes ids, dropping special tokens and padding.
    pub fn decode(&self, ids: &[i64]) -> DataResult<String> {
        let ids: Vec<u32> = ids.iter().filter(|&&i| i >= 0).map(|&i| i as u32).collect();
        self.inner
            .decode(&ids, true)
            .map_err(|e| DataError::Tokenizer {
                path: self.path.clone(),
                detail: e.to_string(),
            })
    }
}

/// `DataCollatorForLanguageModeling.torch_mask_tokens` for one sequence: each non-special token is
/// chosen with `prob`; of those 80% become the mask token, 10% a uniformly random id from the whole
/// vocabulary (as the reference, special ids included), 10% stay. Labels are the original id at
/// chosen positions and -100 elsewhere.
pub fn mlm_mask<R: Rng>(
    enc: &Encoded,
    prob: f64,
    mask_id: i64,
    vocab_size: usize,
    rng: &mut R,
) -> (Vec<i64>, Vec<i64>) {
    let mut ids = enc.ids.clone();
    let mut labels = vec![IGNORE_INDEX; ids.len()];
    for (i, id) in ids.iter_mut().enumerate() {
        if enc.special[i] || rng.gen::<f64>() >= prob {
            continue;
        }
        labels[i] = *id;
        if rng.gen::<f64>() < 0.8 {
            *id = mask_id;
        } else if rng.gen::<f64>() < 0.5 {
            *id = rng.gen_range(0..vocab_size as i64);
        }
    }
    (ids, labels)
}
