//! The real descriptor tables and segment state of a deprivileged guest: the GDT (the wedge's
//! own selectors plus copies of the guest's user segments), the two IDTs (kernel mode: bounce
//! stubs; user mode: exit stubs), the two TSSs, and the `kvm_segment`s the host loads.

use kvm_bindings::kvm_segment;
use wedge::layout::{
    GDT_ENTRIES, KERNEL_EXIT_VECTORS, R_CPL0, R_GDT, R_IDT_K, R_IDT_U, R_STACK, R_TSS, SEL_CS0,
    SEL_CS3, SEL_SS0, SEL_SS3, SEL_TSS, SEL_TSS_USER, STUBS_K, STUBS_X, STUB_SLOT, SYSCALL_PORT,
    TSS_LIMIT, TSS_SIZE, TSS_USER,
};

use super::slot::{Slot, SlotError};

/// A flat 64-bit code descriptor with DPL `dpl`.
pub fn code64(dpl: u64) -> u64 {
    0x0020_9800_0000_0000 | (dpl << 45) | 0x0000_ffff | (0xf << 48) | (1 << 55) | (1 << 41)
}

/// A flat writable data descriptor with DPL `dpl`.
pub fn data(dpl: u64) -> u64 {
    0x00c0_9200_0000_ffff | (0xf << 48) | (dpl << 45)
}

/// The two descriptors of an available 64-bit TSS.
pub fn tss_desc(base: u64, limit: u64) -> [u64; 2] {
    let lo = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [lo, base >> 32]
}

/// A 64-bit interrupt gate (DPL 0) to `handler` through `SEL_CS0`.
pub fn gate(handler: u64) -> [u64; 2] {
    let lo = (handler & 0xffff)
        | (u64::from(SEL_CS0) << 16)
        | (0x8e << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [lo, handler >> 32]
}

/// Top of the stack areas (the kernel TSS's rsp0 with nothing reserved).
pub fn stack_top() -> u64 {
    R_STACK.va() + R_STACK.size
}

/// Writes the GDT, both IDTs and both TSSs.
pub fn write_tables(slot: &Slot) -> Result<(), SlotError> {
    let gdt = R_GDT.gpa();
    let put = |sel: u16, v: u64| slot.write_u64(gdt + u64::from(sel & !7), v);
    put(SEL_CS0, code64(0))?;
    put(SEL_SS0, data(0))?;
    put(SEL_CS3, code64(3))?;
    put(SEL_SS3, data(3))?;
    for (sel, off) in [(SEL_TSS, 0), (SEL_TSS_USER, TSS_USER)] {
        let [lo, hi] = tss_desc(R_TSS.va() + off, TSS_LIMIT);
        put(sel, lo)?;
        put(sel + 8, hi)?;
    }
    for v in 0..256u64 {
        let bounce = R_CPL0.va() + STUBS_K + v * STUB_SLOT;
        let exit = R_CPL0.va() + STUBS_X + v * STUB_SLOT;
        let kernel = if KERNEL_EXIT_VECTORS.iter().any(|&x| u64::from(x) == v) {
            exit
        } else {
            bounce
        };
        for (idt, h) in [(R_IDT_K.gpa(), kernel), (R_IDT_U.gpa(), exit)] {
            let [lo, hi] = gate(h);
            slot.write_u64(idt + v * 16, lo)?;
            slot.write_u64(idt + v * 16 + 8, hi)?;
        }
    }
    // Kernel TSS: rsp0 at the top of the stack areas, every port allowed.
    let k = R_TSS.gpa();
    slot.write_u64(k + 4, stack_top())?;
    let iomap = u16::try_from(TSS_SIZE).unwrap_or(u16::MAX);
    slot.write(k + 102, &iomap.to_le_bytes())?;
    slot.write(k + TSS_LIMIT, &[0xff])?;
    // User TSS: the same rsp0 (user mode never nests), only the system-call port.
    let u = R_TSS.gpa() + TSS_USER;
    slot.write_u64(u + 4, stack_top())?;
    slot.write(u + 102, &iomap.to_le_bytes())?;
    let mut bitmap = vec![0xffu8; 8193];
    let port = usize::from(SYSCALL_PORT);
    bitmap[port / 8] &= !(1 << (port % 8));
    slot.write(u + TSS_SIZE, &bitmap)?;
    Ok(())
}

/// Limit of the real GDT.
pub fn gdt_limit() -> u16 {
    u16::try_from(GDT_ENTRIES * 8 - 1).unwrap_or(u16::MAX)
}

/// Field `(d >> shift) & mask` of a descriptor (mask < 256).
fn bits(d: u64, shift: u32, mask: u64) -> u8 {
    u8::try_from((d >> shift) & mask).unwrap_or(0)
}

/// The `kvm_segment` of a code or data descriptor `d` loaded with `selector`.
pub fn segment(selector: u16, d: u64) -> kvm_segment {
    let limit = ((d >> 32) & 0xf_0000) | (d & 0xffff);
    let g = (d >> 55) & 1;
    kvm_segment {
        base: ((d >> 32) & 0xff00_0000) | ((d >> 16) & 0xff_ffff),
        limit: u32::try_from(if g == 1 { (limit << 12) | 0xfff } else { limit })
            .unwrap_or(u32::MAX),
        selector,
        type_: bits(d, 40, 0xf),
        present: bits(d, 47, 1),
        dpl: bits(d, 45, 3),
        db: bits(d, 54, 1),
        s: bits(d, 44, 1),
        l: bits(d, 53, 1),
        g: bits(d, 55, 1),
        avl: bits(d, 52, 1),
        unusable: 0,
        padding: 0,
    }
}

/// The TSS segment for `TR`.
pub fn tss_segment(selector: u16, base: u64) -> kvm_segment {
    kvm_segment {
        base,
        limit: u32::try_from(TSS_LIMIT).unwrap_or(u32::MAX),
        selector,
        type_: 11,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// A null data segment (FS/GS of the deprivileged kernel; bases come from the MSRs).
pub fn null_segment() -> kvm_segment {
    kvm_segment {
        unusable: 1,
        ..Default::default()
    }
}

/// Whether a guest descriptor may be loaded by a guest user task as code (`code`) or stack:
/// present, DPL 3, a 64-bit code segment or a writable data segment.
pub fn user_descriptor_ok(d: u64, code: bool) -> bool {
    let present = (d >> 47) & 1 == 1;
    let dpl3 = (d >> 45) & 3 == 3;
    let s = (d >> 44) & 1 == 1;
    let ty = (d >> 40) & 0xf;
    let ok = if code {
        ty & 0x8 != 0 && (d >> 53) & 1 == 1 && (d >> 54) & 1 == 0
    } else {
        ty & 0xa == 0x2
    };
    present && dpl3 && s && ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_match_the_examples_gdt() {
        // desc.c: user data 0x00cff3000000ffff, user code 0x00affb000000ffff.
        assert_eq!(data(3) | (1 << 40), 0x00cf_f300_0000_ffff);
        assert_eq!(code64(3) | (1 << 40), 0x00af_fb00_0000_ffff);
        assert!(user_descriptor_ok(0x00af_fb00_0000_ffff, true));
        assert!(user_descriptor_ok(0x00cf_f300_0000_ffff, false));
        assert!(
            !user_descriptor_ok(0x00af_9b00_0000_ffff, true),
            "DPL 0 code"
        );
        assert!(
            !user_descriptor_ok(0x00cf_f300_0000_ffff, true),
            "data as code"
        );
        let s = segment(0x23, 0x00af_fb00_0000_ffff);
        assert_eq!((s.l, s.dpl, s.type_, s.limit), (1, 3, 0xb, 0xffff_ffff));
        let [lo, hi] = tss_desc(0xffff_ffff_c033_4000, 0x2068);
        assert_eq!(hi, 0xffff_ffff);
        assert_eq!((lo >> 40) & 0xff, 0x89);
    }
}
