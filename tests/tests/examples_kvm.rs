//! The example kernels on real KVM through `afterburn-run --backend bare`, compared with QEMU
//! TCG (an independent machine): the same deterministic output, line for line, and the stats a
//! user reads afterwards.
//!
//! Needs /dev/kvm (skipped loudly without it) and qemu-system-x86_64 (required).

use afterburn_tests::{
    afterburn_run, deterministic, kvm_or_skip, native_kernel, qemu_command, require_qemu,
    run_with_timeout, Run,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

fn run_bare(kernel: &Path, stats: &Path) -> Run {
    let mut cmd = Command::new(afterburn_run());
    cmd.args(["--backend", "bare", "--timeout", "100", "--stats-json"])
        .arg(stats)
        .arg(kernel);
    run_with_timeout(cmd, TIMEOUT)
        .unwrap_or_else(|| panic!("{}: afterburn-run hung", kernel.display()))
}

fn run_qemu(kernel: &Path) -> Run {
    require_qemu();
    run_with_timeout(qemu_command(kernel), TIMEOUT)
        .unwrap_or_else(|| panic!("{}: QEMU hung", kernel.display()))
}

#[test]
fn every_example_prints_the_same_on_kvm_bare_as_on_qemu() {
    if !kvm_or_skip("every_example_prints_the_same_on_kvm_bare_as_on_qemu") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for k in guests::KERNELS {
        let kernel = native_kernel(k.name);
        let stats = dir.path().join(format!("{}.json", k.name));
        let kvm = run_bare(&kernel, &stats);
        assert_eq!(
            kvm.code,
            Some(0),
            "{}: afterburn-run exit code\nstdout:\n{}\nstderr:\n{}",
            k.name,
            kvm.stdout,
            kvm.stderr
        );
        let qemu = run_qemu(&kernel);
        assert_eq!(
            qemu.code,
            Some(1),
            "{}: QEMU exit code (status 0 → 1)\n{}",
            k.name,
            qemu.stdout
        );
        assert!(
            !deterministic(&kvm.stdout).is_empty(),
            "{}: printed nothing",
            k.name
        );
        assert_eq!(
            deterministic(&kvm.stdout),
            deterministic(&qemu.stdout),
            "{}: KVM (bare) and QEMU TCG outputs differ",
            k.name
        );
        // Every timing line QEMU printed, KVM printed too (same names, in order).
        let bench_names = |out: &str| -> Vec<String> {
            out.lines()
                .filter_map(|l| l.strip_prefix("bench "))
                .map(|l| l.split(' ').next().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(
            bench_names(&kvm.stdout),
            bench_names(&qemu.stdout),
            "{}: bench lines",
            k.name
        );

        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        assert_eq!(json["backend"], "bare");
        assert_eq!(json["guest_status"], 0);
        assert_eq!(json["exit_code"], 0);
        assert!(
            ["vmx", "svm", "pvm"].contains(&json["host"].as_str().unwrap_or("")),
            "host kind: {}",
            json["host"]
        );
        assert!(json["wall_time_s"].as_f64().is_some_and(|t| t > 0.0));
        assert!(
            json["exits"].as_u64().is_some_and(|n| n > 0),
            "exits counted"
        );
        assert_eq!(
            json["serial_bytes"].as_u64(),
            Some(kvm.stdout.len() as u64),
            "{}: serial_bytes counts what the guest printed",
            k.name
        );
    }
}
