//! afterburner: scan, pad and annotate virtualization-sensitive instructions in x86-64 ELF
//! objects.
//!
//! Layout (decode, plan and write are separate rooms, as in objtool):
//! * [`sensitive`]: which instructions are sensitive ([`sensitive::classify`]).
//! * [`offset_map`]: the monotone original-to-new offset map of a section.
//! * [`elf`]: the read model of an object, and the only code that writes ELF.
//! * [`decode`]: bytes of a code section → sites, fixups, relocation fields.
//! * [`special`]: the table of kernel special sections (`.altinstructions`, `__jump_table`, ...).
//! * [`relayout`]: the padding plan and branch widening (never touches bytes).
//! * [`encode`]: new code bytes from the plan.
//! * [`dwarf`]: DWARF/CFI rewriting.
//! * [`scan`], [`burn`]: the two commands as library calls ([`scan::scan_bytes`],
//!   [`burn::burn_bytes`] and their path-level wrappers); [`report`]: their summaries.
//! * [`error`]: errors that name file, section and offset.
//! * [`verify`]: `afterburner verify`, the independent check of a burnt object.
//! * [`asm_pad`]: the text-level padder of GNU `as` input; [`as_wrapper`]: `afterburner as`;
//!   [`gas_macro`]: its GNU `as` macro expander; [`asm_equiv`]: the check of an expansion.
//! * [`sitediff`]: sites of two burnt objects compared by function and instruction.
// The one exception: mapping the input file (burn.rs, `InputBytes::load`).
#![deny(unsafe_code)]

pub mod as_wrapper;
pub mod asm_equiv;
pub mod asm_pad;
pub mod gas_macro;
pub mod offset_map;
pub mod sensitive;
pub mod sitediff;

pub mod burn;
pub mod decode;
pub mod dwarf;
pub mod elf;
pub mod encode;
pub mod error;
pub mod relayout;
pub mod report;
pub mod scan;
pub mod special;

pub use burn::{burn_bytes, burn_file, Options};
pub use error::{Error, ErrorKind, Result};
pub use scan::{scan_bytes, scan_file};
pub mod verify;
