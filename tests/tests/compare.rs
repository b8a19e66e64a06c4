//! `afterburn-run compare` on every example kernel: the native build against the afterburnt
//! build must print the same deterministic lines and end the same way on every backend that
//! can run them (exit code 0), with the figures a user reads in the report.
//!
//! The afterburnt kernels are built here with the workspace's afterburner once it has its
//! binary (`afterburner/src/main.rs`); until then each native kernel is compared with itself,
//! and the test says so loudly. Needs /dev/kvm (skipped loudly without it).

use afterburn_tests::{afterburn_run, deterministic, kvm_or_skip, run_with_timeout, workspace_bin};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// (name, native, burnt) for every example kernel.
fn kernel_pairs() -> Vec<(&'static str, PathBuf, PathBuf)> {
    let has_afterburner = guests::workspace_dir()
        .join("afterburner/src/main.rs")
        .is_file();
    if has_afterburner {
        let mut opts = guests::BuildOptions::new(guests::default_out_root().unwrap());
        opts.afterburner = Some(workspace_bin("afterburner", "afterburner"));
        let built = guests::build_all(&opts)
            .unwrap_or_else(|e| panic!("building the afterburnt example kernels failed: {e}"));
        built
            .into_iter()
            .map(|b| {
                let burnt = b.burnt.expect("an afterburnt build");
                (b.name, b.native, burnt)
            })
            .collect()
    } else {
        eprintln!(
            "NOTE: the afterburner has no binary on this branch (no afterburner/src/main.rs): \
             comparing each native example kernel with itself"
        );
        afterburn_tests::guests()
            .iter()
            .map(|b| (b.name, b.native.clone(), b.native.clone()))
            .collect()
    }
}

#[test]
fn compare_matches_native_and_burnt_on_every_example_kernel() {
    if !kvm_or_skip("compare_matches_native_and_burnt_on_every_example_kernel") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, native, burnt) in kernel_pairs() {
        let json = dir.path().join(format!("{name}.json"));
        let mut cmd = Command::new(afterburn_run());
        cmd.args([
            "compare",
            "-q",
            "--runs",
            "2",
            "--timeout",
            "60",
            "--native",
        ])
        .arg(&native)
        .arg("--burnt")
        .arg(&burnt)
        .arg("--json")
        .arg(&json);
        let r = run_with_timeout(cmd, Duration::from_secs(600))
            .unwrap_or_else(|| panic!("{name}: compare hung"));
        assert_eq!(r.code, Some(0), "{name}:\n{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("Result: **match**"), "{}", r.stdout);
        let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(j["result"], "match");
        assert_eq!(j["identical_files"], native == burnt);

        // What the kernel prints when run directly, as the yardstick.
        let mut direct = Command::new(afterburn_run());
        direct.args(["--timeout", "60"]).arg(&native);
        let direct = run_with_timeout(direct, Duration::from_secs(120)).unwrap();
        assert_eq!(direct.code, Some(0), "{name}: {}", direct.stderr);
        let lines = deterministic(&direct.stdout).len();
        let bench_names: Vec<&str> = direct
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("bench "))
            .filter_map(|l| l.split(' ').next())
            .collect();

        for b in j["backends"].as_array().unwrap() {
            let backend = b["backend"].as_str().unwrap();
            match b["status"].as_str().unwrap() {
                "skipped" => {
                    let reason = b["skip_reason"].as_str().unwrap_or("");
                    assert!(
                        !reason.is_empty(),
                        "{name} on {backend}: a skip has a reason"
                    );
                    assert!(
                        r.stdout.contains(&format!("- `{backend}`: {reason}")),
                        "{}",
                        r.stdout
                    );
                    eprintln!("{name}: {backend} skipped: {reason}");
                }
                "match" => {
                    assert_eq!(b["compared_lines"], lines, "{name} on {backend}");
                    for v in ["native", "burnt"] {
                        let runs = b[v]["runs"].as_array().unwrap();
                        if b[v]["unavailable"].is_null() {
                            assert_eq!(runs.len(), 2, "{name} {v} on {backend}");
                            assert!(runs.iter().all(|x| x["exit_code"] == 0));
                        }
                    }
                    let f = &b["burnt"]["figures"];
                    let names: Vec<&str> = f["bench"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x["name"].as_str().unwrap())
                        .collect();
                    assert_eq!(names, bench_names, "{name} on {backend}: bench figures");
                    assert!(f["exits"]["exits"]["median"].as_f64().unwrap() > 0.0);
                    if bench_names.is_empty() {
                        // Without timing lines the output has a fixed length.
                        assert_eq!(
                            f["serial_bytes"]["median"].as_u64(),
                            Some(direct.stdout.len() as u64),
                            "{name}: serial bytes"
                        );
                    }
                    assert!(b["ratios"]["wall_time_s"].as_f64().unwrap() > 0.0);
                }
                s => panic!("{name} on {backend}: status {s}: {b:#}"),
            }
        }
        assert_eq!(
            j["backends"][0]["status"], "match",
            "{name}: bare always runs where /dev/kvm works"
        );
    }
}
