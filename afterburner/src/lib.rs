//! afterburner: scan, pad and annotate virtualization-sensitive instructions in x86-64 ELF
//! objects.
//!
//! Layout (decode, plan and write are separate rooms, as in objtool):
//! * [`sensitive`]: which instructions are sensitive ([`sensitive::classify`]).
//! * [`offset_map`]: the monotone original-to-new offset map of a section.
//! * [`verify`]: `afterburner verify`, the independent check of a burnt object.
//! * [`asm_pad`]: the text-level padder of GNU `as` input (seed of `afterburner as`).
#![forbid(unsafe_code)]

pub mod asm_pad;
pub mod offset_map;
pub mod sensitive;
pub mod verify;
