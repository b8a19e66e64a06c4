//! Linux 6.12 (tinyconfig + serial console) through the Linux 64-bit boot protocol, as a bzImage
//! and as a vmlinux. The kernel comes from `$AFTERBURN_LINUX_DIR` or
//! `$HOME/.cache/afterburn/linux-6.12/<build>/` (`arch/x86/boot/bzImage`, `vmlinux`); without
//! one the tests print "SKIPPED: no Linux build". On a PVM host Linux runs emulated at CPL0: the
//! bzImage's decompressor alone takes minutes, the vmlinux prints its boot log for a few seconds
//! and then stops at an instruction the host cannot emulate (xrstor), so the runs here are
//! short and their ends host-dependent.

mod common;

use std::path::{Path, PathBuf};

use common::{afterburn_run_stats, host_is_pvm, kvm_or_skip};
use linux_loader::loader::bootparam::boot_params;
use loader::arch::x86_64::layout::{CMDLINE_START, PML4_START, ZERO_PAGE_START};
use loader::backend::BackendKind;
use loader::builder::{build, VmConfig};
use loader::kernel::{check_fits, inspect, BootProtocol, KernelKind};
use vm_memory::{Bytes, GuestAddress};

/// A Linux build directory holding both `arch/x86/boot/bzImage` and `vmlinux`.
fn linux_build(test: &str) -> Option<PathBuf> {
    let base = std::env::var_os("AFTERBURN_LINUX_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/afterburn/linux-6.12"))
        });
    let ok = |d: &Path| d.join("arch/x86/boot/bzImage").is_file() && d.join("vmlinux").is_file();
    let found = base.as_ref().and_then(|b| {
        if ok(b) {
            return Some(b.clone());
        }
        let preferred = b.join("build-tiny");
        if ok(&preferred) {
            return Some(preferred);
        }
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(b)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| ok(d))
            .collect();
        dirs.sort();
        dirs.into_iter().next()
    });
    if found.is_none() {
        eprintln!("SKIPPED: no Linux build under {base:?} ({test})");
    }
    found
}

#[test]
fn bzimage_setup_header_is_read_as_the_boot_protocol_says() {
    let Some(dir) = linux_build("bzimage_setup_header_is_read_as_the_boot_protocol_says") else {
        return;
    };
    let bytes = std::fs::read(dir.join("arch/x86/boot/bzImage")).unwrap();
    let kind = inspect(&bytes).unwrap();
    assert_eq!(kind.protocol(), BootProtocol::LinuxBzImage);
    let KernelKind::BzImage(b) = &kind else {
        unreachable!()
    };
    // Linux 6.12 speaks boot protocol 2.15 and loads at 1 MiB by default.
    assert_eq!(b.version, 0x020f);
    assert_eq!(b.code32_start, 0x10_0000);
    assert!(b.init_size > 0 && b.cmdline_size >= 255);
    assert_eq!(b.setup_size + b.kernel_size, bytes.len() as u64);
    assert!(check_fits(&kind, 128 << 20).is_ok());
    // The decompressor needs pref_address + init_size, more than 16 MiB.
    assert!(check_fits(&kind, 16 << 20).is_err());
}

#[test]
fn vmlinux_is_an_elf_booted_at_its_physical_entry() {
    let Some(dir) = linux_build("vmlinux_is_an_elf_booted_at_its_physical_entry") else {
        return;
    };
    let bytes = std::fs::read(dir.join("vmlinux")).unwrap();
    let kind = inspect(&bytes).unwrap();
    let KernelKind::Elf(e) = &kind else {
        panic!("vmlinux is not an ELF: {kind:?}")
    };
    if e.pvh_entry.is_none() {
        assert_eq!(kind.protocol(), BootProtocol::LinuxElf);
        assert_eq!(e.entry, 0x100_0000, "startup_64 at CONFIG_PHYSICAL_START");
    }
    assert!(e.segments.iter().all(|s| s.paddr >= 0x10_0000));
}

#[test]
fn bzimage_is_loaded_with_a_correct_zero_page() {
    let test = "bzimage_is_loaded_with_a_correct_zero_page";
    let Some(dir) = linux_build(test) else { return };
    if !kvm_or_skip(test) {
        return;
    }
    let kernel = dir.join("arch/x86/boot/bzImage");
    let file = std::fs::read(&kernel).unwrap();
    let config = VmConfig {
        kernel,
        memory_mib: 256,
        cmdline: Some("console=ttyS0 afterburn=1".into()),
        backend: BackendKind::Bare,
    };
    let m = build(&config, Vec::new()).unwrap();
    let zp: boot_params = m.memory.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
    assert_eq!({ zp.hdr.boot_flag }, 0xaa55);
    assert_eq!({ zp.hdr.header }, 0x5372_6448);
    assert_eq!({ zp.hdr.version }, 0x020f);
    assert_eq!({ zp.hdr.type_of_loader }, 0xff);
    assert_eq!({ zp.hdr.code32_start }, 0x10_0000);
    assert_eq!({ zp.hdr.cmd_line_ptr }, 0x20000);
    assert_eq!({ zp.ext_cmd_line_ptr }, 0);
    assert_eq!(
        { zp.hdr.setup_sects },
        file[0x1f1],
        "the rest of the header is the kernel's"
    );
    assert_eq!(zp.e820_entries, 3);
    let e = zp.e820_table;
    assert_eq!(
        ({ e[0].addr }, { e[0].size }, { e[0].r#type }),
        (0, 0x9_fc00, 1)
    );
    assert_eq!(({ e[1].addr }, { e[1].r#type }), (0x9_fc00, 2));
    assert_eq!(
        ({ e[2].addr }, { e[2].size }, { e[2].r#type }),
        (0x10_0000, (256 << 20) - 0x10_0000, 1)
    );
    let mut cmdline = [0u8; 26];
    m.memory
        .read_slice(&mut cmdline, GuestAddress(CMDLINE_START))
        .unwrap();
    assert_eq!(&cmdline, b"console=ttyS0 afterburn=1\0");
    // The protected-mode kernel sits at 1 MiB, byte for byte.
    let setup = (usize::from(file[0x1f1]) + 1) * 512;
    let mut loaded = vec![0u8; 4096];
    m.memory
        .read_slice(&mut loaded, GuestAddress(0x10_0000))
        .unwrap();
    assert_eq!(loaded, file[setup..setup + 4096]);
    // The vCPU starts at the 64-bit entry with rsi = zero page, in long mode on the identity map.
    let regs = m.vcpu.fd().get_regs().unwrap();
    assert_eq!(regs.rip, 0x10_0200);
    assert_eq!(regs.rsi, ZERO_PAGE_START);
    let sregs = m.vcpu.fd().get_sregs().unwrap();
    assert_eq!(sregs.cr3, PML4_START);
    assert_eq!(sregs.efer & 0x500, 0x500);
    assert_eq!(
        (sregs.cs.selector, sregs.cs.l, sregs.ds.selector),
        (0x10, 1, 0x18)
    );
    let pml4: u64 = m.memory.read_obj(GuestAddress(PML4_START)).unwrap();
    assert_eq!(pml4, 0xa003);
    assert_eq!(m.boot.protocol, BootProtocol::LinuxBzImage);
}

#[test]
fn bzimage_short_run_ends_cleanly() {
    let test = "bzimage_short_run_ends_cleanly";
    let Some(dir) = linux_build(test) else { return };
    if !kvm_or_skip(test) {
        return;
    }
    let kernel = dir.join("arch/x86/boot/bzImage");
    let r = afterburn_run_stats(&["--timeout".as_ref(), "3".as_ref(), kernel.as_os_str()]);
    let j = r.json();
    assert_eq!(j["boot_protocol"], "linux-bzimage");
    assert_eq!(
        j["cmdline"],
        "console=ttyS0 earlyprintk=serial,ttyS0 reboot=t panic=-1"
    );
    if host_is_pvm() {
        // Still decompressing after 3 s of emulation.
        assert_eq!(r.code, Some(104), "{r:#?}");
        assert_eq!(j["end"]["reason"], "timeout");
        assert!(
            r.stderr.contains("timeout") && r.stderr.contains("registers:"),
            "{}",
            r.stderr
        );
        assert_eq!(j["registers"]["mode"], "long (64-bit), paging");
        assert!(r.counter("exits") > 0);
    } else {
        // Hardware virtualization boots tinyconfig Linux in well under 3 s; with no init it
        // panics and reboots (reboot=t: triple fault).
        assert!([101, 104].contains(&r.code.unwrap()), "{r:#?}");
        assert!(r.stdout.contains("Linux version"), "{}", r.stdout);
    }
}

#[test]
fn vmlinux_prints_its_boot_log_with_our_memory_map_and_command_line() {
    let test = "vmlinux_prints_its_boot_log_with_our_memory_map_and_command_line";
    let Some(dir) = linux_build(test) else { return };
    if !kvm_or_skip(test) {
        return;
    }
    let kernel = dir.join("vmlinux");
    let args = [
        "--timeout".as_ref(),
        "120".as_ref(),
        "--memory".as_ref(),
        "96".as_ref(),
        kernel.as_os_str(),
        "--".as_ref(),
        "console=ttyS0 earlyprintk=serial,ttyS0 reboot=t panic=-1 afterburn.test=yes".as_ref(),
    ];
    let r = afterburn_run_stats(&args);
    for line in [
        "Linux version 6.12",
        "Command line: console=ttyS0 earlyprintk=serial,ttyS0 reboot=t panic=-1 afterburn.test=yes",
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
        "BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved",
        "BIOS-e820: [mem 0x0000000000100000-0x0000000005ffffff] usable",
    ] {
        assert!(
            r.stdout.contains(line),
            "missing {line:?} in:\n{}",
            r.stdout
        );
    }
    assert_eq!(r.json()["boot_protocol"], "linux-elf");
    assert!(
        !r.stdout.contains("Unable to read current time from RTC"),
        "the CMOS RTC answers"
    );
    if host_is_pvm() {
        // PVM's emulator cannot run xrstor at CPL0: the run ends with a clear report.
        assert_eq!(r.code, Some(102), "{r:#?}");
        assert_eq!(r.json()["end"]["reason"], "emulation_failure");
        for needle in [
            "emulation failure",
            "instruction bytes",
            "rip 0x",
            "last serial output (20 lines)",
        ] {
            assert!(
                r.stderr.contains(needle),
                "missing {needle:?} in:\n{}",
                r.stderr
            );
        }
    } else {
        assert!([101, 104].contains(&r.code.unwrap()), "{r:#?}");
    }
}
