//! A hostile guest on `--backend kvm`: bad hypercall numbers and arguments, hypercalls from
//! the wrong place, out-of-range ring indices and stack pointers, writes to and jumps into the
//! wedge's memory, mappings of the wedge's physical memory, a forged return to user mode. The
//! loader must survive every attack and end with a report naming what the guest did (exit code
//! 105, "the guest broke the hypercall ABI"), never panic or hang; the same file, left alone,
//! runs normally on both backends.
//!
//! The guest is `wedge/tests/guests/hostile.S` (a small kernel with a hand-written
//! `.afterburn` section), assembled with gcc and linked with ld here. It also has two benign
//! runs: a control, and a user task that takes an exception and timer interrupts in user mode
//! (paths the example kernels do not exercise). Needs /dev/kvm (skipped
//! loudly without it).

use afterburn_tests::{afterburn_run, kvm_or_skip, run_with_timeout, Run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn guest() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        let src = guests::workspace_dir().join("wedge/tests/guests");
        // Next to the example kernels (target/guests/hostile), per process: two test
        // binaries may build it at once.
        let out = guests::default_out_root()
            .expect("the target directory")
            .join("hostile")
            .join(std::process::id().to_string());
        std::fs::create_dir_all(&out).unwrap();
        let obj = out.join("hostile.o");
        let elf = out.join("hostile");
        let st = Command::new("gcc")
            .arg("-c")
            .arg(src.join("hostile.S"))
            .arg("-o")
            .arg(&obj)
            .status()
            .expect("running gcc (apt-get install -y gcc)");
        assert!(st.success(), "assembling hostile.S failed");
        let st = Command::new("ld")
            .args([
                "-nostdlib",
                "-z",
                "noexecstack",
                "-z",
                "max-page-size=0x1000",
                "-T",
            ])
            .arg(src.join("hostile.ld"))
            .arg("-o")
            .arg(&elf)
            .arg(&obj)
            .status()
            .expect("running ld (apt-get install -y binutils)");
        assert!(st.success(), "linking hostile failed");
        elf
    })
}

fn run(backend: &str, attack: &str) -> Run {
    run_for(backend, attack, "20")
}

fn run_for(backend: &str, attack: &str, timeout: &str) -> Run {
    let mut cmd = Command::new(afterburn_run());
    cmd.args(["--backend", backend, "--timeout", timeout])
        .arg(guest())
        .args(["--", attack]);
    let r = run_with_timeout(cmd, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("attack {attack}: afterburn-run hung"));
    assert!(
        !r.stderr.contains("panicked"),
        "attack {attack}: the loader panicked\n{}",
        r.stderr
    );
    r
}

#[test]
fn the_hostile_guest_left_alone_runs_on_both_backends() {
    if !kvm_or_skip("the_hostile_guest_left_alone_runs_on_both_backends") {
        return;
    }
    for backend in ["bare", "kvm"] {
        let r = run(backend, "n");
        assert_eq!(r.code, Some(0), "{backend}: {}", r.stderr);
        assert_eq!(r.stdout, "hostile: alive\n", "{backend}");
    }
}

#[test]
fn exceptions_and_interrupts_from_a_user_task_reach_the_guest_kernel() {
    if !kvm_or_skip("exceptions_and_interrupts_from_a_user_task_reach_the_guest_kernel") {
        return;
    }
    // The guest enters user mode with interrupts on; the task divides by zero, then spins
    // until three timer ticks arrive; the kernel's handlers check that each came from CPL3.
    for backend in ["bare", "kvm"] {
        let r = run(backend, "U");
        assert_eq!(r.code, Some(0), "{backend}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(r.stdout, "hostile: user ok\n", "{backend}");
    }
}

#[test]
fn every_attack_ends_with_a_report_naming_it() {
    if !kvm_or_skip("every_attack_ends_with_a_report_naming_it") {
        return;
    }
    let attacks: &[(&str, &[&str])] = &[
        ("o", &["hypercall port 0xf8", "outside the wedge's code"]),
        ("h", &["unknown hypercall number 0xdead"]),
        (
            "r",
            &["console ring head 0x7fffffff", "past the host's tail"],
        ),
        ("w", &["wrote the wedge's memory at 0xffffffffc0000000"]),
        ("g", &["executed the wedge's memory"]),
        ("v", &["outside guest RAM"]),
        (
            "t",
            &["a CPL0 stub ran on stack", "outside the wedge's stacks"],
        ),
        ("p", &["maps guest-physical 0x100000000", "wedge's memory"]),
        ("u", &["iretq to user mode", "not DPL 3"]),
        (
            "s",
            &["system-call port written", "while the guest kernel ran"],
        ),
        ("x", &["stub port 0xf9", "not by an exit stub"]),
    ];
    for (attack, words) in attacks {
        let r = run("kvm", attack);
        assert_eq!(
            r.code,
            Some(105),
            "attack {attack}: exit code\nstdout:\n{}\nstderr:\n{}",
            r.stdout,
            r.stderr
        );
        assert!(
            r.stderr
                .starts_with("afterburn-run: hypercall ABI violation: "),
            "attack {attack}: {}",
            r.stderr
        );
        for w in *words {
            assert!(
                r.stderr.contains(w),
                "attack {attack}: no {w:?} in\n{}",
                r.stderr
            );
        }
        assert!(
            r.stderr.contains("registers:"),
            "attack {attack}: the report has the registers\n{}",
            r.stderr
        );
    }
}

#[test]
fn random_hypercalls_through_the_wedge_end_cleanly() {
    if !kvm_or_skip("random_hypercalls_through_the_wedge_end_cleanly") {
        return;
    }
    // Seeds 'a'..'z': a pseudo-random hypercall number (0..31) and arguments each, made
    // through an `out` inside the wedge's own code. Whatever the number, the run ends with a
    // report (ABI violation, a guest the wedge cannot go on with, or the timeout of a HALT
    // that nothing wakes) and the loader never fails.
    for seed in b'a'..=b'z' {
        let attack = format!("f{}", seed as char);
        let r = run_for("kvm", &attack, "2");
        assert!(
            matches!(r.code, Some(101 | 104 | 105)),
            "attack {attack}: exit code {:?}\nstderr:\n{}",
            r.code,
            r.stderr
        );
        assert!(
            r.stderr.starts_with("afterburn-run: "),
            "attack {attack}: {}",
            r.stderr
        );
    }
}
