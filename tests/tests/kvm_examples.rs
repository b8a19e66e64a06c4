//! Every example kernel, afterburnt, on `afterburn-run --backend kvm` (the kernel deprivileged
//! at CPL3 with the wedge): the same deterministic output and end as the native kernel on
//! `--backend bare` and on QEMU TCG (an independent machine), with the wedge's own counters
//! showing that the kernel really ran deprivileged (sites switched, interrupts reflected, user
//! mode entered, serial output through the ring).
//!
//! The afterburnt kernels need an afterburner binary: the workspace's (once
//! `afterburner/src/main.rs` exists) or the one `$AFTERBURNER` names. Without either, the test
//! prints a loud SKIPPED line. Needs /dev/kvm (skipped loudly without it) and
//! qemu-system-x86_64.

use afterburn_tests::{
    afterburn_run, deterministic, kvm_or_skip, qemu_command, require_qemu, run_with_timeout,
    workspace_bin, Run,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// The afterburner to burn the examples with, if there is one.
fn afterburner() -> Option<PathBuf> {
    if guests::workspace_dir()
        .join("afterburner/src/main.rs")
        .is_file()
    {
        return Some(workspace_bin("afterburner", "afterburner"));
    }
    std::env::var_os("AFTERBURNER")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

fn run(backend: &str, kernel: &Path, stats: &Path) -> Run {
    let mut cmd = Command::new(afterburn_run());
    cmd.args(["--backend", backend, "--timeout", "100", "--stats-json"])
        .arg(stats)
        .arg(kernel);
    run_with_timeout(cmd, TIMEOUT).unwrap_or_else(|| {
        panic!(
            "{}: afterburn-run --backend {backend} hung",
            kernel.display()
        )
    })
}

fn stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn counter(s: &serde_json::Value, name: &str) -> u64 {
    s["backend_stats"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("backend_stats.{name} missing in {s}"))
}

#[test]
fn every_afterburnt_example_prints_on_kvm_what_the_native_one_prints_on_bare_and_qemu() {
    let test = "every_afterburnt_example_prints_on_kvm_what_the_native_one_prints_on_bare_and_qemu";
    if !kvm_or_skip(test) {
        return;
    }
    let Some(real) = afterburner() else {
        eprintln!(
            "SKIPPED: {test}: no afterburner binary (none in the workspace yet; set AFTERBURNER \
             to one to run this test)"
        );
        return;
    };
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = guests::BuildOptions::new(dir.path().join("guests"));
    opts.afterburner = Some(real);
    let built = guests::build_all(&opts).expect("building the afterburnt example kernels");
    assert_eq!(built.len(), guests::KERNELS.len());
    for b in &built {
        let burnt = b.burnt.as_ref().expect("an afterburnt build");
        let sk = dir.path().join(format!("{}-kvm.json", b.name));
        let sb = dir.path().join(format!("{}-bare.json", b.name));
        let kvm = run("kvm", burnt, &sk);
        let bare = run("bare", &b.native, &sb);
        let qemu = run_with_timeout(qemu_command(&b.native), TIMEOUT).expect("QEMU hung");
        let ctx = format!(
            "{}: kvm exit {:?}\nstdout:\n{}\nstderr:\n{}",
            b.name, kvm.code, kvm.stdout, kvm.stderr
        );
        assert_eq!(kvm.code, Some(0), "{ctx}");
        assert_eq!(bare.code, Some(0), "{}: bare\n{}", b.name, bare.stderr);
        assert_eq!(qemu.code, Some(1), "{}: QEMU (status 0 -> 1)", b.name);
        assert!(!deterministic(&kvm.stdout).is_empty(), "{ctx}");
        assert_eq!(
            deterministic(&kvm.stdout),
            deterministic(&bare.stdout),
            "{}: kvm (afterburnt) and bare (native) differ",
            b.name
        );
        assert_eq!(
            deterministic(&kvm.stdout),
            deterministic(&qemu.stdout),
            "{}: kvm (afterburnt) and QEMU TCG (native) differ",
            b.name
        );
        assert!(kvm.stderr.is_empty(), "{ctx}");

        // The kernel ran deprivileged through the wedge, not at CPL0.
        let s = stats(&sk);
        assert_eq!(s["backend"], "kvm");
        assert_eq!(s["end"]["reason"], "guest_exit");
        let bytes = s["serial_bytes"].as_u64().unwrap();
        assert_eq!(bytes, kvm.stdout.len() as u64, "{}", b.name);
        assert_eq!(
            counter(&s, "wedge_serial_bytes"),
            bytes,
            "{}: every byte went through the wedge's ring",
            b.name
        );
        let native_emulated = stats(&sb)["insn_emulation"].as_u64().unwrap_or(0);
        let kvm_emulated = s["insn_emulation"].as_u64().unwrap_or(0);
        assert!(
            kvm_emulated < native_emulated / 2,
            "{}: {kvm_emulated} emulated (CPL0) instructions on kvm vs {native_emulated} on bare",
            b.name
        );
        match b.name {
            "interrupts" => {
                assert!(counter(&s, "wedge_irqs") >= 32, "{}: {s}", b.name);
                assert!(counter(&s, "wedge_delivered") >= 32, "{}: {s}", b.name);
                assert!(counter(&s, "halts") > 0, "{}: {s}", b.name);
            }
            "paging" => {
                assert!(counter(&s, "user_entries") >= 4, "{}: {s}", b.name);
                assert_eq!(counter(&s, "syscalls"), 4, "{}: {s}", b.name);
                assert!(counter(&s, "cr3_writes") >= 2, "{}: {s}", b.name);
                assert!(counter(&s, "invlpgs") >= 2, "{}: {s}", b.name);
                assert!(
                    counter(&s, "guest_page_faults") >= 4 + 1 + 9,
                    "{}: {s}",
                    b.name
                );
            }
            "microbench" => {
                assert_eq!(counter(&s, "syscalls"), 256 + 1, "{}: {s}", b.name);
                assert!(counter(&s, "wedge_cpuid_local") >= 256, "{}: {s}", b.name);
                assert!(
                    counter(&s, "wedge_exceptions") >= 2 * 256,
                    "{}: {s}",
                    b.name
                );
            }
            _ => {}
        }
    }
}
