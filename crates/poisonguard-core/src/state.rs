//! Fitted states that outlive the process: every [`FittedDetector`](crate::FittedDetector) is
//! serde-serializable, and [`SaveState`] encodes it as MessagePack (named fields, so a reader in
//! any language sees the field names; floats keep their exact bits).
//!
//! The model file that holds several states (one per detector) is written by the `poisonguard`
//! crate; this module only encodes and decodes one state.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// A state that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Encoding failed (a value MessagePack cannot hold).
    #[error("cannot encode the fitted state: {0}")]
    Encode(String),
    /// The bytes are not a state of this type (another detector's, another version's, or
    /// damaged).
    #[error("cannot decode the fitted state: {0}")]
    Decode(String),
}

/// A summary of rows that merges: the summary of one set of rows merged with the summary of
/// another is the summary of both (exactly, or up to floating-point rounding where the type
/// says so). What shards fitted apart, or batches streamed one after another, combine through.
pub trait Merge: Sized {
    /// Merges `other` into `self`.
    ///
    /// # Errors
    /// Summaries that do not describe the same columns (another feature count).
    fn merge(&mut self, other: Self) -> Result<(), MergeError>;
}

/// Two summaries that cannot merge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// The summaries describe different feature counts.
    #[error("cannot merge summaries of {left} and {right} features")]
    FeatureCount {
        /// Features of the summary merged into.
        left: usize,
        /// Features of the summary merged.
        right: usize,
    },
}

/// A fitted state that encodes itself (every `Serialize` type does, through the blanket impl).
pub trait SaveState {
    /// The state as MessagePack with named fields.
    ///
    /// # Errors
    /// [`StateError::Encode`] when a value cannot be encoded.
    fn save_state(&self) -> Result<Vec<u8>, StateError>;
}

impl<T: Serialize> SaveState for T {
    fn save_state(&self) -> Result<Vec<u8>, StateError> {
        rmp_serde::to_vec_named(self).map_err(|e| StateError::Encode(e.to_string()))
    }
}

/// Decodes a state written by [`SaveState::save_state`].
///
/// # Errors
/// [`StateError::Decode`] when the bytes are not a `T`.
pub fn load_state<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StateError> {
    rmp_serde::from_slice(bytes).map_err(|e| StateError::Decode(e.to_string()))
}

/// Interns `s`: each distinct string is leaked once for the whole process, so that the few
/// `&'static str` names a state carries (detector ids, statistic names) can be read back
/// without a leak per load.
pub(crate) fn intern(s: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut guard = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = guard.get_or_insert_with(HashSet::new);
    if let Some(&known) = names.get(s) {
        return known;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Deserializes a `&'static str` field through [`intern`].
pub(crate) fn static_str<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    Ok(intern(&s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_names_are_shared() {
        let a = intern("knn_label");
        let b = intern(&String::from("knn_label"));
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn a_state_round_trips_and_a_wrong_one_is_an_error() {
        let v = vec![1.5f64, f64::MIN_POSITIVE, -0.0];
        let bytes = v.save_state().unwrap();
        let back: Vec<f64> = load_state(&bytes).unwrap();
        assert_eq!(
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert!(matches!(load_state::<String>(&bytes), Err(StateError::Decode(_))));
    }
}
