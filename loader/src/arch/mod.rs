//! Architecture-specific code (only x86-64 is supported).

pub mod x86_64;
