//! Segment descriptors for the boot GDT, and their `kvm_segment` twins for `KVM_SET_SREGS`.
//!
//! The boot GDT is laid out so that it serves both boot protocols:
//!
//! | index | selector | content |
//! |---|---|---|
//! | 0 | 0x00 | null |
//! | 1 | 0x08 | null (unused) |
//! | 2 | 0x10 | flat code: 32-bit (PVH) or 64-bit (Linux `__BOOT_CS`) |
//! | 3 | 0x18 | flat data, read/write (Linux `__BOOT_DS`) |
//! | 4 | 0x20 | busy TSS, base 0, limit 0x67 (only for `tr`; never used by a guest) |
//!
//! Linux's 64-bit boot protocol demands exactly `__BOOT_CS` = 0x10 and `__BOOT_DS` = 0x18;
//! the PVH protocol leaves the selectors open.

use kvm_bindings::kvm_segment;

use super::layout::BOOT_GDT_ENTRIES;

/// Access byte + flags nibble of a flat 32-bit code segment: G, D/B, P, S, type 0xb.
pub const CODE32_FLAGS: u16 = 0xc09b;
/// Access byte + flags nibble of a flat 64-bit code segment: G, L, P, S, type 0xb.
pub const CODE64_FLAGS: u16 = 0xa09b;
/// Access byte + flags nibble of a flat data segment: G, D/B, P, S, type 0x3.
pub const DATA_FLAGS: u16 = 0xc093;
/// Access byte of a busy 32/64-bit TSS: P, type 0xb.
pub const TSS_FLAGS: u16 = 0x008b;

/// GDT index of the code segment.
pub const CODE_INDEX: u8 = 2;
/// GDT index of the data segment.
pub const DATA_INDEX: u8 = 3;
/// GDT index of the TSS.
pub const TSS_INDEX: u8 = 4;

/// The CPU mode a boot protocol enters the kernel in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// 32-bit protected mode, paging off (PVH).
    Protected32,
    /// 64-bit long mode with an identity map (Linux 64-bit boot protocol).
    Long64,
}

/// Encodes a segment descriptor.
///
/// `flags` holds the access byte in bits 0..8 and the flags nibble (AVL, L, D/B, G) in bits
/// 12..16; `limit` is the raw 20-bit limit (in pages when G is set).
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = u64::from(base);
    let limit = u64::from(limit);
    let flags = u64::from(flags);
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// The boot GDT for an entry mode (see the module documentation for the layout).
pub fn boot_gdt(mode: EntryMode) -> [u64; BOOT_GDT_ENTRIES] {
    let code = match mode {
        EntryMode::Protected32 => CODE32_FLAGS,
        EntryMode::Long64 => CODE64_FLAGS,
    };
    [
        0,
        0,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(DATA_FLAGS, 0, 0xfffff),
        gdt_entry(TSS_FLAGS, 0, 0x67),
    ]
}

fn base(entry: u64) -> u64 {
    ((entry >> 32) & 0xff00_0000) | ((entry >> 16) & 0x00ff_ffff)
}

fn raw_limit(entry: u64) -> u32 {
    let limit = ((entry >> 32) & 0x000f_0000) | (entry & 0xffff);
    // The mask keeps 20 bits, so the value always fits.
    u32::try_from(limit).unwrap_or(u32::MAX)
}

fn bit(entry: u64, n: u32) -> u8 {
    u8::from((entry >> n) & 1 == 1)
}

/// The `kvm_segment` a CPU would load from `entry` at GDT index `index`.
///
/// The limit is byte-granular (scaled when G is set), as KVM expects.
pub fn kvm_segment_from_gdt(entry: u64, index: u8) -> kvm_segment {
    let g = bit(entry, 55);
    let raw = raw_limit(entry);
    let present = bit(entry, 47);
    kvm_segment {
        base: base(entry),
        limit: if g == 1 { (raw << 12) | 0xfff } else { raw },
        selector: u16::from(index) * 8,
        // The type nibble always fits in a u8.
        type_: u8::try_from((entry >> 40) & 0xf).unwrap_or(0),
        present,
        dpl: u8::try_from((entry >> 45) & 0x3).unwrap_or(0),
        db: bit(entry, 54),
        s: bit(entry, 44),
        l: bit(entry, 53),
        g,
        avl: bit(entry, 52),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_entry_encodes_every_field() {
        // Base 0x12345678, limit 0xabcde, flags 0xc09b.
        let e = gdt_entry(0xc09b, 0x1234_5678, 0xabcde);
        assert_eq!(e & 0xffff, 0xbcde, "limit 15:0");
        assert_eq!((e >> 16) & 0xff_ffff, 0x34_5678, "base 23:0");
        assert_eq!((e >> 40) & 0xff, 0x9b, "access byte");
        assert_eq!((e >> 48) & 0xf, 0xa, "limit 19:16");
        assert_eq!((e >> 52) & 0xf, 0xc, "flags nibble");
        assert_eq!(e >> 56, 0x12, "base 31:24");
    }

    #[test]
    fn well_known_descriptors() {
        assert_eq!(gdt_entry(CODE64_FLAGS, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(CODE32_FLAGS, 0, 0xfffff), 0x00cf_9b00_0000_ffff);
        assert_eq!(gdt_entry(DATA_FLAGS, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        assert_eq!(gdt_entry(TSS_FLAGS, 0, 0x67), 0x0000_8b00_0000_0067);
    }

    #[test]
    fn segment_from_code64_entry() {
        let s = kvm_segment_from_gdt(gdt_entry(CODE64_FLAGS, 0, 0xfffff), CODE_INDEX);
        assert_eq!(s.base, 0);
        assert_eq!(s.limit, 0xffff_ffff);
        assert_eq!(s.selector, 0x10);
        assert_eq!(s.type_, 0xb);
        assert_eq!(s.present, 1);
        assert_eq!(s.dpl, 0);
        assert_eq!(s.db, 0);
        assert_eq!(s.s, 1);
        assert_eq!(s.l, 1);
        assert_eq!(s.g, 1);
        assert_eq!(s.avl, 0);
        assert_eq!(s.unusable, 0);
    }

    #[test]
    fn segment_from_code32_and_data_entries() {
        let c = kvm_segment_from_gdt(gdt_entry(CODE32_FLAGS, 0, 0xfffff), CODE_INDEX);
        assert_eq!((c.db, c.l, c.type_, c.limit), (1, 0, 0xb, 0xffff_ffff));
        let d = kvm_segment_from_gdt(gdt_entry(DATA_FLAGS, 0, 0xfffff), DATA_INDEX);
        assert_eq!((d.selector, d.db, d.l, d.type_, d.s), (0x18, 1, 0, 0x3, 1));
    }

    #[test]
    fn segment_with_odd_base_dpl_and_byte_granularity() {
        // DPL 3 data segment, byte granular, base 0xdeadbeef, limit 0x12345.
        let e = gdt_entry(0x40f3, 0xdead_beef, 0x12345);
        let s = kvm_segment_from_gdt(e, 7);
        assert_eq!(s.base, 0xdead_beef);
        assert_eq!(s.limit, 0x12345);
        assert_eq!(s.selector, 0x38);
        assert_eq!(s.dpl, 3);
        assert_eq!(s.g, 0);
        assert_eq!(s.db, 1);
    }

    #[test]
    fn tss_and_null_segments() {
        let t = kvm_segment_from_gdt(gdt_entry(TSS_FLAGS, 0, 0x67), TSS_INDEX);
        assert_eq!(
            (t.selector, t.type_, t.s, t.limit, t.present),
            (0x20, 0xb, 0, 0x67, 1)
        );
        let n = kvm_segment_from_gdt(0, 0);
        assert_eq!((n.present, n.unusable), (0, 1));
    }

    #[test]
    fn boot_gdt_layout_per_mode() {
        let g32 = boot_gdt(EntryMode::Protected32);
        let g64 = boot_gdt(EntryMode::Long64);
        assert_eq!(g32[0], 0);
        assert_eq!(g32[1], 0);
        assert_eq!(kvm_segment_from_gdt(g32[2], 2).db, 1);
        assert_eq!(kvm_segment_from_gdt(g64[2], 2).l, 1);
        assert_eq!(g32[3], g64[3]);
        assert_eq!(g32[4], g64[4]);
    }
}
