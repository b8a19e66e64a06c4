//! Linux 6.12 tinyconfig both ways (the longer differential test; docs/kernel-builds.md): built
//! through `afterburner as` (`scripts/linux/build-as.sh tiny`), every object of the vmlinux link
//! compared site by site with `afterburner burn` of the native object, and the object-route
//! kernel (`relink-burnt.sh`) and the wrapper-built kernel booted under QEMU TCG to the native
//! kernel's normalized log (`scripts/linux/as-differential.sh tiny`).
//!
//! Runs whenever the cached native build `$AFTERBURN_CACHE/linux-6.12/build-tiny` and its
//! source tree exist (made by `scripts/linux/fetch-source.sh` and `scripts/linux/build.sh
//! tiny`); prints a loud SKIPPED line otherwise (CI machines start bare), or when
//! `AFTERBURN_SKIP_LINUX_AS=1` is set. The wrapper build is cached, keyed by the afterburner
//! binary's sha256, the kernel source version, the .config and build-as.sh itself: with an
//! unchanged afterburner the test takes about a minute (burning 528 objects, relinking, three
//! boots); after a change of the afterburner it rebuilds the kernel through the wrapper first
//! (minutes; the measured time is in docs/kernel-builds.md).

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

/// `key=value` pairs of the summary line.
fn field<'a>(summary: &'a str, key: &str) -> Option<&'a str> {
    summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn linux_tiny_both_ways() {
    if std::env::var_os("AFTERBURN_SKIP_LINUX_AS").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: linux_tiny_both_ways: AFTERBURN_SKIP_LINUX_AS=1");
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
    let report = std::fs::read_to_string(linux.join("as-differential-tiny/report"))
        .unwrap_or_else(|e| format!("(no report: {e})\n{}", String::from_utf8_lossy(&diff.stderr)));
    let num = |k: &str| -> u64 {
        field(&summary, k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}= in the summary: {summary}\n{report}"))
    };
    // The corpus: every object of the vmlinux link compared, with sites to compare.
    assert!(num("compared") >= 500, "{summary}");
    assert_eq!(num("compared"), num("objects"), "{summary}\n{report}");
    assert!(num("sites_agree") >= 1000, "{summary}");
    // The front ends agree on every site, and the wrapper padded every input it was given.
    assert_eq!(num("burn_failed"), 0, "{summary}\n{report}");
    assert_eq!(num("sites_disagree"), 0, "{summary}\n{report}");
    assert_eq!(num("unpadded_objects"), 0, "{summary}\n{report}");
    assert_eq!(num("wrapper_warnings"), 0, "{summary}\n{report}");
    // Native, object-route and wrapper kernels boot under QEMU TCG to the same log.
    for k in ["boot_native", "boot_burn", "boot_as"] {
        assert_eq!(field(&summary, k), Some("ok"), "{k}: {summary}\n{report}");
    }
    for k in ["log_burn", "log_as"] {
        assert_eq!(field(&summary, k), Some("same"), "{k}: {summary}\n{report}");
    }
    assert!(diff.status.success(), "{summary}\n{report}");
}
