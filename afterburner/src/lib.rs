//! afterburner: scan, pad and annotate virtualization-sensitive instructions in x86-64 ELF
//! objects.
//!
//! Layout (decode, plan and write are separate rooms, as in objtool):
//! * [`sensitive`]: which instructions are sensitive ([`sensitive::classify`]).
//! * [`offset_map`]: the monotone original-to-new offset map of a section.
//! * [`dwarf`]: debug and unwind sections kept true after code moves.
#![forbid(unsafe_code)]

pub mod dwarf;
pub mod offset_map;
pub mod sensitive;
