//! `afterburn-run bench`: regenerates docs/benchmarks.md.

use std::ffi::OsString;

/// `afterburn-run bench ARGS`: returns the exit code.
pub fn main(_args: &[OsString]) -> u8 {
    2
}
