//! The guest's CPUID: what KVM supports on this host, with the topology fixed up for the one
//! vCPU the loader creates (the host's values would name a host CPU's APIC ID, which Linux
//! reports as "[Firmware Bug]: CPU 0: APIC ID mismatch").

use kvm_bindings::kvm_cpuid_entry2;

/// Leaf 1: EBX[31:24] is the initial local APIC ID.
pub const LEAF_FEATURES: u32 = 0x1;
/// Leaf 0xb: extended topology, EDX is the x2APIC ID.
pub const LEAF_TOPOLOGY: u32 = 0xb;
/// Leaf 0x1f: V2 extended topology, EDX is the x2APIC ID.
pub const LEAF_TOPOLOGY_V2: u32 = 0x1f;

/// Sets the APIC ID the CPUID entries report to `apic_id`: leaf 1 EBX[31:24] and EDX of every
/// subleaf of leaves 0xb and 0x1f. Leaf 1 EBX[23:16] (logical processors per package) becomes 1.
pub fn set_apic_id(entries: &mut [kvm_cpuid_entry2], apic_id: u8) {
    for e in entries {
        match e.function {
            LEAF_FEATURES => {
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(apic_id) << 24) | (1 << 16);
            }
            LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => e.edx = u32::from(apic_id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32, ebx: u32, edx: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ebx,
            edx,
            ..Default::default()
        }
    }

    #[test]
    fn apic_ids_are_rewritten() {
        let mut e = vec![
            entry(0x0, 0, 0x756e_6547, 0x4965_6e69),
            entry(0x1, 0, 0x0102_0800, 0x1234),
            entry(0xb, 0, 0x1, 0x3),
            entry(0xb, 1, 0x2, 0x3),
            entry(0x1f, 0, 0x1, 0x3),
        ];
        set_apic_id(&mut e, 0);
        assert_eq!(e[0].ebx, 0x756e_6547, "other leaves untouched");
        assert_eq!(
            e[1].ebx, 0x0001_0800,
            "APIC ID 0, 1 logical CPU, CLFLUSH size kept"
        );
        assert_eq!(e[1].edx, 0x1234);
        assert_eq!((e[2].edx, e[3].edx, e[4].edx), (0, 0, 0));
        assert_eq!((e[2].ebx, e[3].ebx), (0x1, 0x2));
        set_apic_id(&mut e, 5);
        assert_eq!(e[1].ebx >> 24, 5);
        assert_eq!(e[3].edx, 5);
    }
}
