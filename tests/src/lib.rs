//! End-to-end tests live in tests/tests/; [`oracle`] judges burnt objects with GNU binutils.

pub mod oracle;
