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
    events.iter().fold(FNV_INIT, |h, &(tag, value)| {
        fnv(h, (u64::from(tag) << 32) | u64::from(value))
    })
}

/// The checksum's start value (`CSUM_INIT` in kernel.h).
const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// One step of the checksum (`csum_mix` in kernel.h): 64-bit FNV-1a over a 64-bit word.
fn fnv(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3)
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

/// `workload.c`: POOL_PAGES, MAX_ORDER, ROUNDS_MM, NR_SLOTS, NR_NAMES, HASH_BITS, CRC_BYTES.
const WL_POOL_PAGES: usize = 4096;
const WL_MAX_ORDER: usize = 10;
const WL_ROUNDS_MM: u32 = 5000;
const WL_SLOTS: usize = 256;
const WL_NAMES: u32 = 2500;
const WL_HASH_BITS: u32 = 10;
const WL_CRC_BYTES: usize = 32 * 1024;

/// What `workload` computes, recomputed here by an independent model (docs/examples.md,
/// "workload"): the buddy allocator's block choices, the dcache's chains and the CRC-32.
struct WorkloadModel {
    checksum: u64,
    buckets_used: u32,
    longest_chain: u32,
    crc: u32,
}

fn workload_model() -> WorkloadModel {
    let mut state: u64 = 0x853c_49e6_748f_ea9b;
    let mut rng = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    let mut h = FNV_INIT;

    // 1. Buddy allocator: free lists as stacks (the list head is the top), free block heads
    // with their order.
    let mut free: Vec<Vec<usize>> = vec![Vec::new(); WL_MAX_ORDER + 1];
    let mut free_order: Vec<Option<usize>> = vec![None; WL_POOL_PAGES];
    for i in (0..WL_POOL_PAGES).step_by(1 << WL_MAX_ORDER) {
        free[WL_MAX_ORDER].push(i);
        free_order[i] = Some(WL_MAX_ORDER);
    }
    let alloc = |free: &mut Vec<Vec<usize>>, fo: &mut Vec<Option<usize>>, order: usize| {
        for o in order..=WL_MAX_ORDER {
            let Some(page) = free[o].pop() else { continue };
            fo[page] = None;
            let mut o = o;
            while o > order {
                o -= 1;
                let buddy = page + (1 << o);
                fo[buddy] = Some(o);
                free[o].push(buddy);
            }
            return Some(page);
        }
        None
    };
    let release = |free: &mut Vec<Vec<usize>>, fo: &mut Vec<Option<usize>>, page: usize, order: usize| {
        let (mut idx, mut order) = (page, order);
        while order < WL_MAX_ORDER {
            let buddy = idx ^ (1 << order);
            if fo[buddy] != Some(order) {
                break;
            }
            let at = free[order].iter().position(|&p| p == buddy).expect("free buddy listed");
            free[order].remove(at);
            fo[buddy] = None;
            idx &= !(1 << order);
            order += 1;
        }
        fo[idx] = Some(order);
        free[order].push(idx);
    };
    let mut slots: Vec<Option<(usize, usize)>> = vec![None; WL_SLOTS];
    let mut failed = 0u32;
    for _ in 0..WL_ROUNDS_MM {
        let x = rng();
        let s = x as usize % WL_SLOTS;
        let o = ((x >> 12) & 7) as usize;
        let order = if o < 5 { 0 } else { o - 4 } + if (x >> 16) & 15 == 0 { 2 } else { 0 };
        if let Some((page, o)) = slots[s].take() {
            h = fnv(h, ((page as u64) << 8) | o as u64);
            release(&mut free, &mut free_order, page, o);
        }
        match alloc(&mut free, &mut free_order, order) {
            Some(page) => slots[s] = Some((page, order)),
            None => failed += 1,
        }
    }
    h = fnv(h, (0x100u64 << 32) | u64::from(failed));

    // 2. The dcache: every hit mixes its inode number; then each bucket's chain length.
    for n in 0..2 * WL_NAMES {
        if n % 2 == 1 {
            h = fnv(h, 1000 + u64::from(n / 2));
        }
    }
    let name = |n: u32| {
        let dirs = ["usr", "lib", "bin", "etc", "var", "share", "local"];
        format!("{}-{}", dirs[n as usize % dirs.len()], n)
    };
    let hash = |s: &str| {
        let mut h = 0u64;
        for b in s.bytes() {
            h = (h + u64::from(b)).wrapping_mul(0x9e37_ffff_fffc_0001);
        }
        (h >> 32) as u32
    };
    let mut chains = vec![0u32; 1 << WL_HASH_BITS];
    for n in (0..WL_NAMES).filter(|n| n % 3 != 0) {
        chains[(hash(&name(n * 7 + 1)) >> (32 - WL_HASH_BITS)) as usize] += 1;
    }
    for (b, &c) in chains.iter().enumerate() {
        h = fnv(h, ((b as u64) << 32) | u64::from(c));
    }

    // 3. CRC-32 (IEEE) of the next CRC_BYTES / 4 values of the sequence, little-endian.
    let mut crc = !0u32;
    for _ in 0..WL_CRC_BYTES / 4 {
        for byte in rng().to_le_bytes() {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { 0xedb8_8320 ^ (crc >> 1) } else { crc >> 1 };
            }
        }
    }
    let crc = !crc;
    h = fnv(h, (0x300u64 << 32) | u64::from(crc));
    WorkloadModel {
        checksum: h,
        buckets_used: chains.iter().filter(|&&c| c != 0).count() as u32,
        longest_chain: chains.iter().copied().max().unwrap_or(0),
        crc,
    }
}

#[test]
fn workload_computes_what_an_independent_model_computes() {
    let run = boot_ok("workload");
    let out = &run.stdout;
    let m = workload_model();
    let deleted = WL_NAMES.div_ceil(3);
    for line in [
        format!("workload: {WL_POOL_PAGES} pages in the buddy allocator, timer at 250 Hz"),
        format!(
            "workload: mm: {WL_ROUNDS_MM} alloc/free rounds, {WL_POOL_PAGES} pages free, all merged"
        ),
        format!(
            "workload: crc32 over {} KiB = {:#010x} (copy matches)",
            WL_CRC_BYTES / 1024,
            m.crc
        ),
    ] {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in:\n{out}");
    }
    let slab = line_value(out, "workload: slab: ");
    let expect_start = format!(
        "{WL_NAMES} names, {WL_NAMES} hits, {WL_NAMES} misses, {deleted} deleted, {} objects live in ",
        WL_NAMES - deleted
    );
    let expect_end = format!(
        "dcache {}/{} buckets used, longest chain {}",
        m.buckets_used,
        1 << WL_HASH_BITS,
        m.longest_chain
    );
    assert!(
        slab.starts_with(&expect_start) && slab.ends_with(&expect_end),
        "slab line `{slab}`, expected `{expect_start}... {expect_end}`"
    );
    for phase in ["mm", "slab", "crc"] {
        assert!(parse_u64(line_value(out, &format!("bench workload-{phase}-cycles "))) > 0);
    }
    let printed = parse_u64(line_value(out, "workload: checksum="));
    assert_eq!(printed, m.checksum, "workload checksum\n{out}");
}
