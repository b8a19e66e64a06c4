//! The guest-side runtime of the kvm backend, built by build.rs from `wedge/runtime/` (C and
//! GNU assembly, gcc with `-mgeneral-regs-only`) and linked at the wedge hole's addresses.
//!
//! [`BLOB_TEXT`], [`BLOB_DATA`], [`BLOB_CPL0`] and [`BLOB_SYSCALL`] are the bytes of regions
//! `R_TEXT`, `R_DATA`, `R_CPL0` and `R_SYSCALL` from each region's start; [`SYMBOLS`] lists the
//! runtime's global symbols.

include!(concat!(env!("OUT_DIR"), "/runtime_image.rs"));

/// Address of the runtime's global symbol `name`.
pub fn symbol(name: &str) -> Option<u64> {
    SYMBOLS.iter().find(|(n, _, _)| *n == name).map(|s| s.1)
}

/// Address of the runtime's global symbol `name`; panics if it does not exist (the runtime
/// is part of this crate, so a missing symbol is a build bug, not bad input).
pub fn sym(name: &str) -> u64 {
    symbol(name).unwrap_or_else(|| panic!("the wedge runtime has no symbol {name}"))
}

/// Every code range of the runtime as (name, start, end): its text and its CPL0 stubs and
/// system call page.
pub fn code_ranges() -> [(&'static str, u64, &'static [u8]); 3] {
    use crate::layout::{R_CPL0, R_SYSCALL, R_TEXT};
    [
        ("text", R_TEXT.va(), BLOB_TEXT),
        ("cpl0", R_CPL0.va(), BLOB_CPL0),
        ("syscall", R_SYSCALL.va(), BLOB_SYSCALL),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::*;

    #[test]
    fn runtime_is_where_the_layout_says() {
        assert_eq!(sym("wedge_entries"), R_TEXT.va());
        assert_eq!(sym("wedge_stubs_k"), R_CPL0.va() + STUBS_K);
        assert_eq!(sym("wedge_stubs_x"), R_CPL0.va() + STUBS_X);
        assert_eq!(sym("wedge_stubs_end"), R_CPL0.va() + R_CPL0.size);
        assert_eq!(sym("wedge_syscall_entry"), R_SYSCALL.va());
        assert_eq!(
            sym("wedge_entries_end") - sym("wedge_entries"),
            256 * ENTRY_SLOT
        );
        assert!(sym("wedge_text_end") <= R_TEXT.va() + R_TEXT.size);
        assert!(BLOB_TEXT.len() as u64 <= R_TEXT.size);
        assert!(BLOB_DATA.len() as u64 <= R_DATA.size);
    }
}
