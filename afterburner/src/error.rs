//! Errors of `scan` and `burn`: what went wrong, and where (file, section, offset).
//!
//! Every error that input can cause names its place; none is a panic. The CLI prints the
//! [`Display`](std::fmt::Display) form and exits with status 2.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where an error was found. Every part is optional; [`Display`](fmt::Display) prints the
/// parts that are known, as `file: section .text+0x1f: `.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// The input file, once known (library calls on bytes have none).
    pub file: Option<PathBuf>,
    /// Section name.
    pub section: Option<String>,
    /// Byte offset inside the section (or inside the file when there is no section).
    pub offset: Option<u64>,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        match (&self.section, self.offset) {
            (Some(s), Some(o)) => write!(f, "section {s} offset {o:#x}: "),
            (Some(s), None) => write!(f, "section {s}: "),
            (None, Some(o)) => write!(f, "file offset {o:#x}: "),
            (None, None) => Ok(()),
        }
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The bytes are not an ELF file, or not a 64-bit one.
    #[error("not an ELF64 file: {0}")]
    NotElf64(String),
    /// An ELF64 file for another machine or byte order.
    #[error("unsupported ELF file: {0} (only little-endian x86-64 is supported)")]
    WrongMachine(String),
    /// `burn` accepts only relocatable objects (`ET_REL`).
    #[error("not a relocatable object (e_type {0}); burn rewrites ET_REL objects only")]
    NotRelocatable(u16),
    /// The ELF structure is broken (truncated, bad indices, bad sizes).
    #[error("malformed ELF: {0}")]
    Malformed(String),
    /// A relocation type this tool does not know how to carry through a layout change.
    #[error("unsupported relocation type {name} ({r_type})")]
    UnsupportedRelocation {
        /// Numeric `ELF64_R_TYPE`.
        r_type: u32,
        /// Its name, or `unknown`.
        name: &'static str,
    },
    /// Bytes that do not decode as an x86-64 instruction.
    #[error("undecodable bytes {bytes}")]
    Undecodable {
        /// Hex of the first bytes.
        bytes: String,
    },
    /// A relocation inside code that does not sit on a displacement or immediate field.
    #[error("data in code: relocation {name} does not land on a displacement or immediate field of the instruction at {insn:#x} ({text})")]
    DataInCode {
        /// Relocation type name.
        name: &'static str,
        /// Offset of the instruction that contains it.
        insn: u64,
        /// The instruction as GNU syntax.
        text: String,
    },
    /// A decoded instruction overlaps a symbol start.
    #[error("instruction at {insn:#x} ({text}) runs over the start of symbol `{symbol}`")]
    Overlap {
        /// Instruction offset.
        insn: u64,
        /// The instruction text.
        text: String,
        /// Symbol name.
        symbol: String,
    },
    /// The new layout cannot be built (branch out of range that cannot be widened, ...).
    #[error("impossible layout: {0}")]
    Layout(String),
    /// DWARF or CFI rewriting failed.
    #[error("DWARF/CFI: {0}")]
    Dwarf(String),
    /// Reading or writing a file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A bug in this tool (an internal consistency check failed).
    #[error("internal error: {0}")]
    Internal(String),
}

/// An error with its place.
#[derive(Debug)]
pub struct Error {
    /// Where.
    pub place: Place,
    /// What.
    pub kind: ErrorKind,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.place, self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl Error {
    /// An error without a place yet.
    pub fn new(kind: ErrorKind) -> Self {
        Error {
            place: Place::default(),
            kind,
        }
    }

    /// An error at `offset` of section `section`.
    pub fn at(section: &str, offset: u64, kind: ErrorKind) -> Self {
        Error {
            place: Place {
                file: None,
                section: Some(section.to_owned()),
                offset: Some(offset),
            },
            kind,
        }
    }

    /// An error about section `section` as a whole.
    pub fn in_section(section: &str, kind: ErrorKind) -> Self {
        Error {
            place: Place {
                file: None,
                section: Some(section.to_owned()),
                offset: None,
            },
            kind,
        }
    }

    /// Sets the file name (kept if already set).
    pub fn with_file(mut self, file: &Path) -> Self {
        if self.place.file.is_none() {
            self.place.file = Some(file.to_owned());
        }
        self
    }

    /// Shorthand for a malformed-ELF error.
    pub fn malformed(msg: impl Into<String>) -> Self {
        Error::new(ErrorKind::Malformed(msg.into()))
    }

    /// Shorthand for an internal error.
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal(msg.into()))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io(e))
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
