//! `poisonguard-io`'s integration tests, one module per subject, linked into one test binary
//! (a binary per file linked polars six times). Run one subject with
//! `cargo test -p poisonguard-io --test suite <module>::`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod batches;
mod common;
mod frames;
mod lists;
mod npy;
mod roundtrip;
mod shards;
