//! The kvm backend's memory layout and shared-page formats: the one source of truth that
//! build.rs also turns into the runtime's `layout.h` (C and assembly) and `regions.ld`.
//!
//! The wedge hole is the top 1 GiB of the guest's virtual address space; its contents live in a
//! memory slot of their own at [`SLOT_GPA`], outside guest RAM. docs/backends.md describes the
//! regions; docs/hypercall-abi.md the shared pages and ports.

include!("layout_defs.rs");

impl Region {
    /// Virtual address of the region's start.
    pub const fn va(&self) -> u64 {
        HOLE_VA + self.offset
    }
    /// Guest-physical address of the region's start.
    pub const fn gpa(&self) -> u64 {
        SLOT_GPA + self.offset
    }
    /// Whether virtual address `va` lies in the region.
    pub const fn contains_va(&self, va: u64) -> bool {
        va >= self.va() && va - self.va() < self.size
    }
}

/// Byte offset of a virtual-CPU field, by name; panics on an unknown name (a bug, not input).
pub fn vcpu(name: &str) -> u64 {
    VCPU_FIELDS
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no vCPU field {name}"))
        .offset
}

/// Byte offset of a hypercall-page field, by name.
pub fn hc(name: &str) -> u64 {
    HC_FIELDS
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no hypercall field {name}"))
        .offset
}

/// Hypercall number by name.
pub fn hc_number(name: &str) -> u64 {
    HC_NUMBERS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no hypercall {name}"))
        .1
}

// Facts the runtime and the host rely on, checked at compile time.
const _: () = assert!(SLOT_SIZE <= 1 << 30, "the hole is 1 GiB");
const _: () = assert!(RING_DATA + RING_SIZE <= R_RING.size);
const _: () = assert!(RING_SIZE.is_power_of_two());
const _: () = assert!(GDT_ENTRIES * 8 <= R_GDT.size);
const _: () = assert!(STUBS_X + 256 * STUB_SLOT == R_CPL0.size);
const _: () = assert!(HC_PORT < 256 && STUB_PORT < 256 && START_PORT < 256 && SYSCALL_PORT < 256);
const _: () = assert!(TSS_LIMIT < TSS_USER && TSS_USER + TSS_LIMIT < R_TSS.size);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_ordered_aligned_and_inside_the_slot() {
        let mut end = 0;
        for r in REGIONS {
            assert_eq!(r.offset % 0x1000, 0, "{} not page aligned", r.name);
            assert_eq!(r.size % 0x1000, 0, "{} size", r.name);
            assert!(r.offset >= end, "{} overlaps the region before it", r.name);
            end = r.offset + r.size;
        }
        assert!(end <= SLOT_SIZE, "regions end at {end:#x}, past the slot");
        assert_eq!(HOLE_VA, 0xffff_ffff_c000_0000);
        assert_eq!(R_STACK.size % STACK_AREA, 0);
    }

    #[test]
    fn fields_do_not_overlap_and_fit_their_pages() {
        for (table, size) in [
            (VCPU_FIELDS, VCPU_SIZE),
            (HC_FIELDS, R_HCALL.size),
            (RING_FIELDS, RING_DATA),
            (CPUID_FIELDS, CPUID_ENTRIES),
        ] {
            let mut sorted: Vec<&Field> = table.iter().collect();
            sorted.sort_by_key(|f| f.offset);
            let mut end = 0;
            for f in sorted {
                assert!(f.offset >= end, "field {} overlaps", f.name);
                assert_eq!(f.offset % f.size, 0, "field {} misaligned", f.name);
                end = f.offset + f.size * f.count;
            }
            assert!(end <= size);
        }
        assert_eq!(vcpu("VIF"), 0);
        assert_eq!(vcpu("CR3"), 0x40);
    }

    #[test]
    fn selectors_fit_the_real_gdt() {
        for s in [
            SEL_CS0,
            SEL_SS0,
            SEL_CS3,
            SEL_SS3,
            SEL_TSS + 8,
            SEL_TSS_USER + 8,
        ] {
            assert!(u64::from(s >> 3) < GDT_ENTRIES);
        }
        assert_eq!(SEL_SS0, SEL_CS0 + 8, "syscall loads SS = STAR.CS + 8");
        assert_eq!(SEL_CS3 & 3, 3);
        assert_eq!(SEL_SS3 & 3, 3);
    }
}
