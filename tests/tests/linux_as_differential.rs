//! Linux 6.12 tinyconfig both ways (the longer differential test; docs/kernel-builds.md):
//! built through `afterburner as` (`scripts/linux/build-as.sh tiny`, minutes the first time,
//! then cached), every object of the vmlinux link compared site by site with `afterburner burn`
//! of the native object (`scripts/linux/as-differential.sh tiny`), and the wrapper-built
//! bzImage booted under QEMU TCG to the expected "No working init found" panic.
//!
//! Runs when `AFTERBURN_LONG_TESTS=1` is set and the cached native build
//! `$AFTERBURN_CACHE/linux-6.12/build-tiny` exists (made by `scripts/linux/build.sh tiny`);
//! otherwise prints a loud SKIPPED line. It is opt-in because the wrapper build is redone
//! whenever the afterburner binary changes (about 15 minutes on 2 cores), which does not fit
//! CI's budget.

use afterburn_tests::workspace_bin;
use std::path::PathBuf;
use std::process::Command;

fn cache() -> PathBuf {
    std::env::var_os("AFTERBURN_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/afterburn"),
        PathBuf::from,
    )
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts/linux")
        .join(name)
}

#[test]
fn linux_tiny_both_ways() {
    if std::env::var_os("AFTERBURN_LONG_TESTS").is_none_or(|v| v != "1") {
        eprintln!(
            "SKIPPED: linux_tiny_both_ways: set AFTERBURN_LONG_TESTS=1 to build Linux through \
             `afterburner as` (about 15 minutes) and compare it with the object route"
        );
        return;
    }
    let linux = cache().join("linux-6.12");
    if !linux.join("build-tiny/vmlinux").is_file() || !linux.join("src/Makefile").is_file() {
        eprintln!(
            "SKIPPED: linux_tiny_both_ways: no cached Linux build at {} (run scripts/linux/fetch-source.sh and scripts/linux/build.sh tiny)",
            linux.display()
        );
        return;
    }
    let ab = workspace_bin("afterburner", "afterburner");
    let build = Command::new(script("build-as.sh"))
        .arg("tiny")
        .env("AFTERBURNER", &ab)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "build-as.sh failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let diff = Command::new(script("as-differential.sh"))
        .arg("tiny")
        .env("AFTERBURNER", &ab)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&diff.stdout).into_owned();
    eprintln!("linux tiny: {summary}");
    let report =
        std::fs::read_to_string(linux.join("as-differential-tiny/report")).unwrap_or_default();
    let log = linux.join("build-tiny-as/boot.log");
    let boot = Command::new(script("boot-qemu.sh"))
        .arg(linux.join("build-tiny-as/arch/x86/boot/bzImage"))
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        boot.status.success(),
        "the wrapper-built kernel did not boot to the expected panic:\n{}",
        String::from_utf8_lossy(&boot.stderr)
    );
    assert!(
        diff.status.success(),
        "the two front ends disagree on Linux tiny ({summary}):\n{report}"
    );
}
