//! afterburn-run's refusals: bad arguments, bad kernel files and backends that do not exist
//! yet all end with exit code 100 and a message naming the problem. None of these needs KVM
//! except where a valid guest is built (that needs only binutils).

mod common;

use std::io::Write;

use common::{afterburn_run, afterburn_run_stats, guest};

fn assert_refused(r: &common::Run, needles: &[&str]) {
    assert_eq!(r.code, Some(100), "{r:#?}");
    assert_eq!(r.stdout, "");
    for n in needles {
        assert!(r.stderr.contains(n), "missing {n:?} in: {}", r.stderr);
    }
}

#[test]
fn bad_arguments_exit_100() {
    assert_refused(&afterburn_run::<&str>(&[]), &["KERNEL"]);
    assert_refused(&afterburn_run(&["--timeout", "soon", "k"]), &["--timeout"]);
    assert_refused(&afterburn_run(&["--timeout", "0", "k"]), &["positive"]);
    assert_refused(&afterburn_run(&["--memory", "lots", "k"]), &["--memory"]);
    assert_refused(&afterburn_run(&["--backend", "xen", "k"]), &["xen"]);
    let help = afterburn_run(&["--help"]);
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("Exit codes:") && help.stdout.contains("104"));
}

#[test]
fn bt_is_not_implemented_yet_and_kvm_needs_a_burnt_kernel() {
    let g = guest("hello", &[]);
    let r = afterburn_run_stats(&["--backend".as_ref(), "bt".as_ref(), g.as_os_str()]);
    assert_refused(&r, &["the bt backend is not implemented yet"]);
    assert_eq!(r.json()["end"]["reason"], "start_failure");
    assert_eq!(r.json()["exit_code"], 100);
    assert_eq!(r.json()["backend"], "bt");
    // The test guests were never burnt: no .afterburn section.
    let r = afterburn_run_stats(&["--backend".as_ref(), "kvm".as_ref(), g.as_os_str()]);
    assert_refused(
        &r,
        &["the kvm backend could not prepare", "no .afterburn section"],
    );
    assert_eq!(r.json()["end"]["reason"], "start_failure");
    assert_eq!(r.json()["exit_code"], 100);
    assert_eq!(r.json()["backend"], "kvm");
}

#[test]
fn missing_and_non_kernel_files_are_refused() {
    let r = afterburn_run(&["/nonexistent/kernel"]);
    assert_refused(&r, &["/nonexistent/kernel", "No such file"]);
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some text\n").unwrap();
    assert_refused(
        &afterburn_run(&[&text]),
        &["notes.txt", "not a kernel image"],
    );
    assert_refused(&afterburn_run(&[dir.path()]), &["not a regular file"]);
}

#[test]
fn truncated_and_hostile_elfs_are_refused_with_the_place() {
    let good = std::fs::read(guest("hello", &[])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Cut inside the program headers.
    let cut = dir.path().join("cut");
    std::fs::write(&cut, &good[..100]).unwrap();
    assert_refused(
        &afterburn_run(&[&cut]),
        &["cut", "program header table", "past the end of the file"],
    );
    // A segment claiming more file bytes than there are.
    let mut big = good.clone();
    big[64 + 32..64 + 40].copy_from_slice(&0x10_0000u64.to_le_bytes()); // p_filesz of phdr 0
    big[64 + 40..64 + 48].copy_from_slice(&0x10_0000u64.to_le_bytes()); // p_memsz
    let p = dir.path().join("big");
    std::fs::write(&p, &big).unwrap();
    assert_refused(
        &afterburn_run(&[&p]),
        &[
            "program header 0 (file offset 0x40)",
            "past the end of the file",
        ],
    );
    // A segment that would land on the loader's boot structures.
    let mut low = good.clone();
    low[64 + 24..64 + 32].copy_from_slice(&0x7000u64.to_le_bytes()); // p_paddr
    let p = dir.path().join("low");
    std::fs::write(&p, &low).unwrap();
    assert_refused(&afterburn_run(&[&p]), &["program header 0", "below 1 MiB"]);
    // A kernel larger than RAM.
    let mut huge = good.clone();
    huge[64 + 40..64 + 48].copy_from_slice(&0x4000_0000u64.to_le_bytes()); // p_memsz 1 GiB
    let p = dir.path().join("huge");
    std::fs::write(&p, &huge).unwrap();
    assert_refused(
        &afterburn_run(&[p.as_os_str(), "--memory".as_ref(), "64".as_ref()]),
        &["needs guest RAM", "--memory"],
    );
}

#[test]
fn bad_memory_sizes_and_command_lines_are_refused() {
    let g = guest("hello", &[]);
    assert_refused(
        &afterburn_run(&[g.as_os_str(), "--memory".as_ref(), "1".as_ref()]),
        &["--memory 1", "too small"],
    );
    assert_refused(
        &afterburn_run(&[g.as_os_str(), "--memory".as_ref(), "4096".as_ref()]),
        &["--memory 4096", "too large"],
    );
    let long = "x".repeat(5000);
    assert_refused(
        &afterburn_run(&[g.as_os_str(), "--".as_ref(), long.as_ref()]),
        &["command line", "5000 bytes"],
    );
}

#[test]
fn a_stats_file_is_never_half_written() {
    // The stats file of a refused start is complete JSON, and no temporary file stays behind.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("s.json");
    let mut f = std::fs::File::create(&json).unwrap();
    f.write_all(b"old").unwrap();
    let r = afterburn_run(&[
        "--stats-json".as_ref(),
        json.as_os_str(),
        "/nonexistent".as_ref(),
    ]);
    assert_eq!(r.code, Some(100));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["exit_code"], 100);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
