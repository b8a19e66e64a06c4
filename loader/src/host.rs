//! Which kind of KVM serves /dev/kvm: hardware virtualization (`vmx`, `svm`) or PVM, the
//! paravirtualized KVM that runs guests without hardware support (guest CPL0 code is emulated
//! there, CPL3 code runs natively).

use std::path::Path;

/// The host's kind of KVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// Intel VT-x (`kvm_intel`).
    Vmx,
    /// AMD-V (`kvm_amd`).
    Svm,
    /// PVM (`kvm_pvm`).
    Pvm,
    /// None of the above could be told apart.
    Unknown,
}

impl HostKind {
    /// The name used in reports and the stats JSON: `vmx`, `svm`, `pvm` or `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            HostKind::Vmx => "vmx",
            HostKind::Svm => "svm",
            HostKind::Pvm => "pvm",
            HostKind::Unknown => "unknown",
        }
    }
}

/// Which KVM vendor modules are loaded (`/sys/module/<name>` exists).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvmModules {
    /// `kvm_pvm`.
    pub pvm: bool,
    /// `kvm_intel`.
    pub intel: bool,
    /// `kvm_amd`.
    pub amd: bool,
}

/// Whether the first `flags` line of `/proc/cpuinfo` lists `flag`.
pub fn cpu_has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .is_some_and(|(_, f)| f.split_whitespace().any(|x| x == flag))
}

/// Decides the host kind. A loaded vendor module decides; PVM first, because it serves
/// /dev/kvm whenever it is loaded (it can sit on a host whose CPU also has `vmx`). Without a
/// module, the CPU flags decide.
pub fn classify(cpuinfo: &str, modules: KvmModules) -> HostKind {
    if modules.pvm {
        HostKind::Pvm
    } else if modules.intel {
        HostKind::Vmx
    } else if modules.amd {
        HostKind::Svm
    } else if cpu_has_flag(cpuinfo, "vmx") {
        HostKind::Vmx
    } else if cpu_has_flag(cpuinfo, "svm") {
        HostKind::Svm
    } else {
        HostKind::Unknown
    }
}

/// Detects this host's kind from `/proc/cpuinfo` and `/sys/module`.
pub fn detect() -> HostKind {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let m = |name: &str| Path::new("/sys/module").join(name).exists();
    classify(
        &cpuinfo,
        KvmModules {
            pvm: m("kvm_pvm"),
            intel: m("kvm_intel"),
            amd: m("kvm_amd"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTEL: &str = "processor\t: 0\nflags\t\t: fpu vme de pse vmx ssse3\nbugs\t\t: spectre\n";
    const AMD: &str = "processor\t: 0\nflags\t\t: fpu svm sse4a\n";
    const GUEST: &str = "processor\t: 0\nflags\t\t: fpu hypervisor sse2\n";

    #[test]
    fn flags() {
        assert!(cpu_has_flag(INTEL, "vmx"));
        assert!(!cpu_has_flag(INTEL, "svm"));
        assert!(!cpu_has_flag(INTEL, "vm"), "whole words only");
        assert!(!cpu_has_flag("bugs: vmx\n", "vmx"), "only the flags line");
        assert!(!cpu_has_flag("", "vmx"));
    }

    #[test]
    fn classification() {
        let none = KvmModules::default();
        assert_eq!(classify(INTEL, none), HostKind::Vmx);
        assert_eq!(classify(AMD, none), HostKind::Svm);
        assert_eq!(classify(GUEST, none), HostKind::Unknown);
        let pvm = KvmModules { pvm: true, ..none };
        assert_eq!(classify(GUEST, pvm), HostKind::Pvm);
        assert_eq!(
            classify(INTEL, pvm),
            HostKind::Pvm,
            "kvm_pvm wins over the vmx flag"
        );
        assert_eq!(
            classify(GUEST, KvmModules { amd: true, ..none }),
            HostKind::Svm
        );
        assert_eq!(
            classify(
                GUEST,
                KvmModules {
                    intel: true,
                    ..none
                }
            ),
            HostKind::Vmx
        );
        assert_eq!(HostKind::Pvm.name(), "pvm");
    }
}
