//! Integration tests of the storage crate: one conformance suite run against every backend, and the
//! backend-specific guarantees (durability across `kill -9`, bounded size under compaction, bad input).

mod bad_input;
mod compaction_size;
mod conformance;
mod crash;
