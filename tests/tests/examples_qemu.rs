//! The example guest kernels, built by the `guests` library, booted on QEMU's TCG emulator: an
//! independent x86 machine that none of afterburn's code touches.
//!
//! Each kernel must exit through the debug-exit port with status 0 (QEMU exit code 1), print
//! what docs/examples.md says it prints, and finish in a few seconds. The checksums are
//! recomputed here from the event sequences docs/examples.md specifies.
//!
//! qemu-system-x86_64 is required (Debian package `qemu-system-x86`); without it these tests
//! fail and say so.

use afterburn_tests::{native_kernel, qemu_command, require_qemu, run_with_timeout, Run};
use std::time::Duration;

/// A run that takes longer than this is killed (a hang, not a slow run).
const TIMEOUT: Duration = Duration::from_secs(60);

/// `interrupts.c` NR_TICKS.
const INTERRUPTS_TICKS: u32 = 32;
/// `paging/sys.h`: USER_PID and USER_TOUCH_PAGES.
const PAGING_PID: u32 = 7;
const PAGING_TOUCH_PAGES: u32 = 8;
/// `paging.c` KDEMAND_TOUCH.
const PAGING_KERNEL_DEMAND: u32 = 4;
/// The microbenchmarks, in the order `microbench.c` runs them.
const MICROBENCH_NAMES: [&str; 12] = [
    "syscall",
    "in",
    "out",
    "cr8wr",
    "callret",
    "pgfault",
    "divzero",
    "ptemod",
    "rdtsc",
    "cpuid",
    "clisti",
    "pushfpopf",
];

fn boot(name: &str) -> Run {
    require_qemu();
    let kernel = native_kernel(name);
    let run = run_with_timeout(qemu_command(&kernel), TIMEOUT)
        .unwrap_or_else(|| panic!("{name}: no exit after {TIMEOUT:?} under QEMU"));
    eprintln!("{name}: {:.3} s under QEMU TCG", run.elapsed.as_secs_f64());
    run
}

/// Boots a kernel and checks what every kernel must do: exit status 0 through the debug-exit
/// port, whole lines, no panic or unexpected trap, a few seconds at most.
fn boot_ok(name: &str) -> Run {
    let run = boot(name);
    assert_eq!(
        run.code,
        Some(1),
        "{name}: QEMU exit code {:?}, expected 1 (guest status 0 through port 0xf4)\nstdout:\n{}\nstderr:\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.ends_with('\n'),
        "{name}: output does not end a line:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains('\r'),
        "{name}: output has carriage returns"
    );
    for line in run.stdout.lines() {
        assert!(
            !line.starts_with("panic:") && !line.starts_with("unexpected trap"),
            "{name}: {line}\n{}",
            run.stdout
        );
    }
    run
}

/// The value after `prefix` on the one line that starts with it.
fn line_value<'a>(out: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix(prefix)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one line starting `{prefix}`, got {found:?} in:\n{out}"
    );
    found[0]
}

fn parse_u64(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .unwrap_or_else(|e| panic!("not a number: `{s}`: {e}"))
}

/// 64-bit FNV-1a over 64-bit words, each event being `tag << 32 | value` (docs/examples.md).
fn checksum(events: &[(u32, u32)]) -> u64 {
    events
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &(tag, value)| {
            (h ^ ((u64::from(tag) << 32) | u64::from(value))).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

#[test]
fn hello_prints_its_line() {
    let run = boot_ok("hello");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        ["hello from afterburn", "hello: pvh start_info magic ok"],
        "{}",
        run.stdout
    );
}

#[test]
fn interrupts_counts_ticks_with_a_deterministic_checksum() {
    let run = boot_ok("interrupts");
    let out = &run.stdout;
    assert!(
        out.contains("interrupts: irq flag save/restore ok\n"),
        "{out}"
    );
    let ticks = parse_u64(line_value(out, "interrupts: ticks="));
    assert_eq!(ticks, u64::from(INTERRUPTS_TICKS), "{out}");
    parse_u64(line_value(out, "bench idle-wakeups "));
    parse_u64(line_value(out, "bench cycles-per-tick "));

    // Phase 1: IF after cli, sti, outer save (saved, after), inner save, inner and outer restore.
    let mut events = vec![
        (0x01, 0),
        (0x02, 1),
        (0x03, 1),
        (0x04, 0),
        (0x05, 0),
        (0x06, 0),
        (0x07, 1),
    ];
    // Phase 2: per tick, its number, IF inside the handler, IF and CPL of the interrupted code.
    for t in 1..=INTERRUPTS_TICKS {
        events.extend([(0x10, t), (0x11, 0), (0x12, 1), (0x13, 0)]);
    }
    events.push((0x20, INTERRUPTS_TICKS));
    let printed = parse_u64(line_value(out, "interrupts: checksum="));
    assert_eq!(printed, checksum(&events), "interrupts checksum\n{out}");
}

#[test]
fn paging_serves_faults_and_runs_the_user_task() {
    let run = boot_ok("paging");
    let out = &run.stdout;
    for line in [
        "paging: switched cr3 to new page tables",
        "paging: pte remap: 0x1111, after invlpg 0x2222, after cr3 reload 0x1111",
        "paging: write-protect fault served, write retried",
        "paging: entering user mode",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing `{line}` in:\n{out}"
        );
    }
    let kernel_faults = parse_u64(line_value(out, "paging: kernel demand faults served: "));
    assert_eq!(kernel_faults, u64::from(PAGING_KERNEL_DEMAND), "{out}");

    // The user task's two writes, as printed (the kernel copies them from user memory).
    let user_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("user: ")).collect();
    assert_eq!(
        user_lines,
        ["user: hello from user mode", "user: touched 8 heap pages"],
        "{out}"
    );

    let status = PAGING_PID * (1..=PAGING_TOUCH_PAGES).sum::<u32>();
    assert_eq!(
        parse_u64(line_value(out, "paging: user task exited with status ")),
        u64::from(status)
    );
    // write, getpid, write, exit; the stack page and PAGING_TOUCH_PAGES heap pages.
    let counts = line_value(out, "paging: syscalls=");
    assert_eq!(
        counts,
        format!("4 user-page-faults={}", PAGING_TOUCH_PAGES + 1),
        "{out}"
    );

    let write = |line: &str| {
        (
            0x06,
            (1 << 16) | u32::try_from(line.len() + 1).expect("short line"),
        )
    };
    let mut events = vec![(0x01, 1)];
    events.extend((0..PAGING_KERNEL_DEMAND).map(|i| (0x02, (i << 8) | 2)));
    events.extend([(0x03, 0x1111), (0x03, 0x2222), (0x03, 0x1111), (0x04, 3)]);
    events.extend([write(user_lines[0]), (0x06, 2 << 16)]);
    events.push((0x05, (2 << 16) | 6)); // the stack page, on the first call
    events.extend((0..PAGING_TOUCH_PAGES).map(|i| (0x05, (1 << 16) | (i << 8) | 6)));
    events.extend([
        write(user_lines[1]),
        (0x06, (3 << 16) | status),
        (0x07, status),
    ]);
    let printed = parse_u64(line_value(out, "paging: checksum="));
    assert_eq!(printed, checksum(&events), "paging checksum\n{out}");
}

#[test]
fn microbench_prints_every_benchmark_and_a_checksum() {
    let run = boot_ok("microbench");
    let out = &run.stdout;
    let headers: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("microbench: ")?.strip_suffix(" iterations"))
        .filter_map(|h| h.split_once(" benchmarks x "))
        .collect();
    assert_eq!(
        headers.len(),
        1,
        "expected one `microbench: N benchmarks x M iterations` line:\n{out}"
    );
    let (count, iters) = headers[0];
    assert_eq!(parse_u64(count), MICROBENCH_NAMES.len() as u64, "{out}");
    let iters = u32::try_from(parse_u64(iters)).expect("iterations fit in u32");
    assert!(iters > 0, "{out}");

    let bench: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("bench "))
        .map(|l| {
            l.split_once(' ')
                .unwrap_or_else(|| panic!("bad bench line `bench {l}`"))
        })
        .collect();
    let names: Vec<&str> = bench.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, MICROBENCH_NAMES, "{out}");
    for (name, cycles) in &bench {
        assert!(
            parse_u64(cycles) > 0,
            "bench {name}: {cycles} cycles per iteration"
        );
    }
    let events: Vec<(u32, u32)> = (1..=12).map(|i| (i, iters)).collect();
    let printed = parse_u64(line_value(out, "microbench: checksum="));
    assert_eq!(printed, checksum(&events), "microbench checksum\n{out}");
}

#[test]
fn output_is_deterministic_apart_from_bench_lines() {
    use afterburn_tests::deterministic;
    for kernel in guests::KERNELS {
        let first = boot_ok(kernel.name);
        let second = boot_ok(kernel.name);
        assert_eq!(
            deterministic(&first.stdout),
            deterministic(&second.stdout),
            "{}: two runs differ outside `bench ` lines",
            kernel.name
        );
    }
}
