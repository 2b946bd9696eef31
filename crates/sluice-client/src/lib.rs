//! placeholder for dependency warmup
