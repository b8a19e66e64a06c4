//! End to end on a real kernel: every object of a Linux 6.12 tinyconfig vmlinux link is
//! burnt in place in a copy of the build, the kernel's own `make` relinks it
//! (`scripts/linux/relink-burnt.sh`), and the burnt bzImage must boot under QEMU (TCG) to
//! the same init panic with the same boot log (normalised by
//! `scripts/linux/normalize-boot-log --ignore-sizes`) as the native one.
//! SKIPPED when the tiny build, the scripts or qemu-system-x86_64 are missing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn build(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let t = Path::new(&home).join(".cache/afterburn/linux-6.12").join(name);
    t.join("arch/x86/boot/bzImage").exists().then_some(t)
}

fn normalized(script: &Path, log: &Path) -> String {
    let out = Command::new("python3")
        .arg(script)
        .arg("--ignore-sizes")
        .arg(log)
        .output()
        .unwrap();
    assert!(out.status.success(), "normalize-boot-log failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn burnt_tiny_kernel_boots_like_the_native_one() {
    boots_like_the_native_one("build-tiny");
}

/// The tinyconfig plus DWARF 5, ORC unwinder and jump labels (`__jump_table`,
/// `.orc_unwind_ip`, `.debug_*` in every object).
#[test]
fn burnt_dwarf_kernel_boots_like_the_native_one() {
    boots_like_the_native_one("build-dwarf");
}

fn boots_like_the_native_one(name: &str) {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/linux");
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let (Some(build), true, true) = (build(name), scripts.join("relink-burnt.sh").exists(), qemu) else {
        eprintln!("SKIPPED: needs $HOME/.cache/afterburn/linux-6.12/{name}, scripts/linux/relink-burnt.sh and qemu-system-x86_64");
        return;
    };
    let w = tempfile::tempdir().unwrap();
    let out = w.path().join(format!("relink-{name}-burnt"));
    let rewrite = format!("{} burn --in-place", env!("CARGO_BIN_EXE_afterburner"));
    let r = Command::new("bash")
        .arg(scripts.join("relink-burnt.sh"))
        .arg(&build)
        .arg(&out)
        .env("AFTERBURN_REWRITE", &rewrite)
        .env("AFTERBURN_REWRITE_BATCH", "200")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "relink failed:\n{stderr}");
    let vmlinux = out.join("vmlinux");
    let sections = String::from_utf8(
        Command::new("readelf")
            .arg("-SW")
            .arg(&vmlinux)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        sections.contains(".afterburn"),
        "the relinked vmlinux has no .afterburn"
    );

    let native_log = w.path().join("native.log");
    let burnt_log = w.path().join("burnt.log");
    for (kernel, log) in [
        (build.join("arch/x86/boot/bzImage"), &native_log),
        (out.join("arch/x86/boot/bzImage"), &burnt_log),
    ] {
        let s = Command::new("bash")
            .arg(scripts.join("boot-qemu.sh"))
            .arg(&kernel)
            .arg(log)
            .env("BOOT_TIMEOUT", "120")
            .status()
            .unwrap();
        assert!(
            s.success(),
            "{} did not boot to the expected panic (log {})",
            kernel.display(),
            log.display()
        );
    }
    let norm = scripts.join("normalize-boot-log");
    let (a, b) = (normalized(&norm, &native_log), normalized(&norm, &burnt_log));
    assert!(a.lines().count() > 40, "native boot log too short:\n{a}");
    assert_eq!(a, b, "burnt kernel's boot log differs from the native one");
}
