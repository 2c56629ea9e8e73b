//! Response caching.

pub mod replay;
