//! Local APIC set-up at boot: LINT0 as ExtINT (so the in-kernel PIC's interrupts, including the
//! UART's IRQ 4, reach the CPU in virtual-wire mode) and LINT1 as NMI, as a PC BIOS leaves them.

use kvm_bindings::kvm_lapic_state;

/// Offset of the LVT LINT0 register in the local APIC page.
pub const APIC_LVT0: usize = 0x350;
/// Offset of the LVT LINT1 register in the local APIC page.
pub const APIC_LVT1: usize = 0x360;
/// LVT delivery mode ExtINT, unmasked.
pub const LVT_EXTINT: u32 = 0x7 << 8;
/// LVT delivery mode NMI, unmasked.
pub const LVT_NMI: u32 = 0x4 << 8;

/// Reads a 32-bit APIC register; `None` if `offset` is outside the register page.
pub fn lapic_reg(state: &kvm_lapic_state, offset: usize) -> Option<u32> {
    let bytes = state.regs.get(offset..offset.checked_add(4)?)?;
    let mut v = [0u8; 4];
    for (d, s) in v.iter_mut().zip(bytes) {
        *d = s.to_ne_bytes()[0];
    }
    Some(u32::from_le_bytes(v))
}

/// Writes a 32-bit APIC register; returns false if `offset` is outside the register page.
pub fn set_lapic_reg(state: &mut kvm_lapic_state, offset: usize, value: u32) -> bool {
    let Some(end) = offset.checked_add(4) else {
        return false;
    };
    let Some(bytes) = state.regs.get_mut(offset..end) else {
        return false;
    };
    for (d, s) in bytes.iter_mut().zip(value.to_le_bytes()) {
        *d = std::ffi::c_char::from_ne_bytes([s]);
    }
    true
}

/// The boot LAPIC state: `current` with LINT0 = ExtINT and LINT1 = NMI, both unmasked.
pub fn boot_lapic(current: &kvm_lapic_state) -> kvm_lapic_state {
    let mut s = *current;
    set_lapic_reg(&mut s, APIC_LVT0, LVT_EXTINT);
    set_lapic_reg(&mut s, APIC_LVT1, LVT_NMI);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_registers_are_programmed() {
        let mut cur = kvm_lapic_state::default();
        assert!(set_lapic_reg(&mut cur, APIC_LVT0, 0x1_0000));
        assert!(set_lapic_reg(&mut cur, 0x20, 0x1234_5678));
        let s = boot_lapic(&cur);
        assert_eq!(lapic_reg(&s, APIC_LVT0), Some(0x700));
        assert_eq!(lapic_reg(&s, APIC_LVT1), Some(0x400));
        assert_eq!(
            lapic_reg(&s, 0x20),
            Some(0x1234_5678),
            "other registers kept"
        );
    }

    #[test]
    fn out_of_page_offsets_are_refused() {
        let mut s = kvm_lapic_state::default();
        assert_eq!(lapic_reg(&s, 1021), None);
        assert!(!set_lapic_reg(&mut s, 1021, 1));
        assert!(!set_lapic_reg(&mut s, usize::MAX, 1));
        assert_eq!(lapic_reg(&s, 1020), Some(0));
    }
}
