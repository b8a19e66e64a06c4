//! `afterburn-run compare` run as a user runs it, on tiny test guests (tests/guests/*.s):
//! exit codes, the Markdown on stdout, the JSON checked against the tables of docs/compare.md,
//! skipped backends and their reasons. Tests that boot guests need /dev/kvm and print a loud
//! SKIPPED line without it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{afterburn_run_stats, guest, kvm_or_skip};
use serde_json::Value;

struct Compare {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    json: Option<Value>,
    markdown_file: Option<String>,
    svg_file: Option<String>,
}

/// Runs `afterburn-run compare ARGS --json F --markdown F --svg F` and reads the files.
fn compare(args: &[&std::ffi::OsStr]) -> Compare {
    let dir = tempfile::tempdir().unwrap();
    let (json, md, svg) = (
        dir.path().join("c.json"),
        dir.path().join("c.md"),
        dir.path().join("c.svg"),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_afterburn-run"))
        .arg("compare")
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("cannot run afterburn-run");
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    Compare {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: read(&json).map(|t| serde_json::from_str(&t).expect("the JSON report parses")),
        markdown_file: read(&md),
        svg_file: read(&svg),
    }
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// The test guest printing two lines and a `bench ticks N` line.
fn two_lines(line: u64, bench: u64) -> PathBuf {
    guest("two_lines", &[("LINE", line), ("BENCH", bench)])
}

#[test]
fn two_kernels_differing_in_one_line_exit_1_and_the_report_shows_that_line() {
    if !kvm_or_skip("two_kernels_differing_in_one_line_exit_1_and_the_report_shows_that_line") {
        return;
    }
    let native = two_lines(0, 1);
    let burnt = two_lines(1, 1);
    let c = compare(&[
        os("--native"),
        native.as_os_str(),
        os("--burnt"),
        burnt.as_os_str(),
        os("--backends"),
        os("bare"),
        os("--runs"),
        os("2"),
    ]);
    assert_eq!(c.code, Some(1), "{}\n{}", c.stdout, c.stderr);
    assert!(c.stdout.contains("**MISMATCH**"), "{}", c.stdout);
    assert!(
        c.stdout.contains(
            "- `bare`, burnt run 1, output, line 2: native `second line: as compiled` / burnt \
             `second line: changed`"
        ),
        "{}",
        c.stdout
    );
    assert_eq!(
        c.markdown_file.as_deref(),
        Some(c.stdout.as_str()),
        "--markdown holds what stdout showed"
    );
    let j = c.json.unwrap();
    assert_eq!(j["result"], "mismatch");
    assert_eq!(j["exit_code"], 1);
    let b = &j["backends"][0];
    assert_eq!(b["status"], "mismatch");
    assert_eq!(b["compared_lines"], 2);
    let d = b["differences"].as_array().unwrap();
    assert_eq!(
        d.len(),
        2,
        "both burnt runs differ, the native ones agree: {d:#?}"
    );
    for (i, d) in d.iter().enumerate() {
        assert_eq!(d["variant"], "burnt");
        assert_eq!(d["run"], i + 1);
        assert_eq!(d["kind"], "output");
        assert_eq!(d["line"], 2);
        assert_eq!(d["expected"], "second line: as compiled");
        assert_eq!(d["actual"], "second line: changed");
    }
}

#[test]
fn timing_lines_may_differ_and_unavailable_backends_are_skipped_with_the_loaders_reason() {
    if !kvm_or_skip(
        "timing_lines_may_differ_and_unavailable_backends_are_skipped_with_the_loaders_reason",
    ) {
        return;
    }
    // Same deterministic lines, different `bench ticks` values.
    let native = two_lines(0, 3);
    let burnt = two_lines(0, 6);
    let c = compare(&[
        os("--native"),
        native.as_os_str(),
        os("--burnt"),
        burnt.as_os_str(),
        os("--runs"),
        os("3"),
    ]);
    assert_eq!(c.code, Some(0), "{}\n{}", c.stdout, c.stderr);
    let j = c.json.unwrap();
    assert_eq!(j["result"], "match");
    assert_eq!(j["identical_files"], false);
    let backends = j["backends"].as_array().unwrap();
    assert_eq!(
        backends
            .iter()
            .map(|b| b["backend"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["bare", "kvm", "bt"],
        "the default is every backend, in order"
    );
    let bare = &backends[0];
    assert_eq!(bare["status"], "match");
    assert_eq!(bare["native"]["runs"].as_array().unwrap().len(), 3);
    assert_eq!(bare["burnt"]["runs"].as_array().unwrap().len(), 3);
    let ticks = |v: &str| bare[v]["figures"]["bench"][0].clone();
    assert_eq!(ticks("native")["name"], "ticks");
    assert_eq!(ticks("native")["median"], 3);
    assert_eq!(ticks("burnt")["median"], 6);
    assert_eq!(bare["ratios"]["bench"][0]["ratio"], 2.0);
    assert_eq!(bare["ratios"]["serial_bytes"], 1.0);
    assert!(
        c.stdout.contains("| `ticks` | 3 | 6 | 2.00 |"),
        "{}",
        c.stdout
    );

    // A backend is skipped exactly when afterburn-run itself refuses to start the kernel
    // there, and the reason is the loader's own.
    let mut skipped = 0;
    for b in &backends[1..] {
        let name = b["backend"].as_str().unwrap();
        let direct = afterburn_run_stats(&[os("--backend"), os(name), native.as_os_str()]);
        if direct.code == Some(100) {
            skipped += 1;
            let reason = direct.json()["end"]["description"].as_str().unwrap();
            assert_eq!(b["status"], "skipped", "{name}");
            assert_eq!(b["skip_reason"], reason, "{name}");
            assert_eq!(b["native"]["unavailable"], reason);
            assert_eq!(
                b["native"]["runs"].as_array().unwrap().len(),
                1,
                "not retried"
            );
            assert_eq!(b["native"]["runs"][0]["started"], false);
            assert_eq!(b["ratios"], Value::Null);
            assert!(
                c.stdout.contains(&format!("- `{name}`: {reason}")),
                "{}",
                c.stdout
            );
        } else {
            assert_eq!(b["status"], "match", "{name} runs kernels now: {b:#}");
        }
    }
    eprintln!("{skipped} of 2 backends (kvm, bt) skipped on this host");
    let svg = c.svg_file.expect("--svg written");
    assert!(svg.starts_with("<svg") && svg.contains("ticks") && svg.contains("bare burnt"));
}

/// One documented object: the paths it appears at and its fields with their types.
struct Table {
    paths: Vec<String>,
    fields: Vec<(String, String)>,
}

/// The schema tables of docs/compare.md: each `###` heading naming `$...` paths, and the
/// `` | `field` | type | meaning | `` rows under it.
fn documented_tables() -> Vec<Table> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compare.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let mut tables: Vec<Table> = Vec::new();
    let mut in_schema = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            in_schema = line.contains("`afterburn-compare/1`");
            continue;
        }
        if !in_schema {
            continue;
        }
        if let Some(h) = line.strip_prefix("### ") {
            let paths: Vec<String> = h
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|p| p.starts_with('$'))
                .map(str::to_string)
                .collect();
            tables.push(Table {
                paths,
                fields: Vec::new(),
            });
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 4 && cells[1].starts_with('`') && cells[1].ends_with('`') {
            if let Some(t) = tables.last_mut() {
                if !t.paths.is_empty() {
                    t.fields
                        .push((cells[1].trim_matches('`').to_string(), cells[2].to_string()));
                }
            }
        }
    }
    tables.retain(|t| !t.paths.is_empty());
    assert!(tables.len() >= 10, "docs/compare.md lost its schema tables");
    tables
}

/// Every value at a documented path (`[]` array elements, `*` native and burnt, `{}` map
/// values); nulls on the way are no instances.
fn at<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![v];
    for seg in path.split('.').skip(1) {
        let (name, all) = match seg.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (seg, false),
        };
        let mut next = Vec::new();
        for c in cur {
            let vals: Vec<&Value> = match name {
                "*" => vec![&c["native"], &c["burnt"]],
                "{}" => c
                    .as_object()
                    .map(|o| o.values().collect())
                    .unwrap_or_default(),
                n => vec![&c[n]],
            };
            for v in vals {
                if all {
                    next.extend(v.as_array().into_iter().flatten());
                } else if !v.is_null() {
                    next.push(v);
                }
            }
        }
        cur = next;
    }
    cur
}

fn has_type(v: &Value, ty: &str) -> bool {
    ty.split(" or ").any(|t| match t.trim() {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        other => panic!("docs/compare.md uses an unknown type {other:?}"),
    })
}

fn check_against_docs(j: &Value, tables: &[Table]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for t in tables {
        for p in &t.paths {
            let objs = at(j, p);
            *seen.entry(p.clone()).or_insert(0) += objs.len();
            for o in objs {
                let obj = o
                    .as_object()
                    .unwrap_or_else(|| panic!("{p} is not an object: {o}"));
                for (field, ty) in &t.fields {
                    let v = obj
                        .get(field)
                        .unwrap_or_else(|| panic!("{p}: documented field {field} missing in {o}"));
                    assert!(has_type(v, ty), "{p}.{field} should be {ty}: {v}");
                }
                for k in obj.keys() {
                    assert!(
                        t.fields.iter().any(|(f, _)| f == k),
                        "{p}: field {k} is not documented in docs/compare.md"
                    );
                }
            }
        }
    }
    seen
}

#[test]
fn the_json_report_has_every_field_docs_compare_md_lists_with_its_type() {
    if !kvm_or_skip("the_json_report_has_every_field_docs_compare_md_lists_with_its_type") {
        return;
    }
    let tables = documented_tables();
    // A mismatch with timing lines on every backend: differences, figures, ratios, bench
    // entries, and (while kvm/bt cannot start) skipped backends all appear.
    let c = compare(&[
        os("--native"),
        two_lines(0, 2).as_os_str(),
        os("--burnt"),
        two_lines(1, 4).as_os_str(),
        os("--runs"),
        os("2"),
    ]);
    assert_eq!(c.code, Some(1), "{}", c.stderr);
    let j = c.json.unwrap();
    let seen = check_against_docs(&j, &tables);
    for (p, n) in &seen {
        assert!(*n > 0, "the report has no {p} to check: {j:#}");
    }
    // What the tables cannot say: element types inside arrays and maps.
    for s in at(&j, "$.backends[].*.figures.wall_time_s")
        .into_iter()
        .chain(at(&j, "$.backends[].*.figures.exits.{}"))
        .chain(at(&j, "$.backends[].*.figures.bench[]"))
    {
        let values = s["values"].as_array().unwrap();
        assert_eq!(values.len(), 2, "one value per run");
        assert!(values.iter().all(Value::is_number));
    }
    for r in at(&j, "$.backends[].ratios.exits")
        .into_iter()
        .chain(at(&j, "$.backends[].ratios.userspace_exits"))
    {
        for v in r.as_object().unwrap().values() {
            assert!(v.is_number() || v.is_null(), "{v}");
        }
    }
    assert_eq!(j["schema"], "afterburn-compare/1");
    let date = j["date"].as_str().unwrap();
    assert!(
        date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T',
        "{date}"
    );
    // The same checks on an error report (nothing ran).
    let e = compare(&[
        os("--native"),
        os("/nonexistent/native"),
        os("--burnt"),
        os("/nonexistent/burnt"),
    ]);
    assert_eq!(e.code, Some(2));
    let ej = e.json.expect("an error report is still written");
    check_against_docs(&ej, &tables);
    assert_eq!(ej["result"], "error");
}

#[test]
fn unreadable_or_unbootable_kernels_and_bad_arguments_exit_2() {
    let c = compare(&[
        os("--native"),
        os("/nonexistent/kernel"),
        os("--burnt"),
        os("/nonexistent/kernel"),
    ]);
    assert_eq!(c.code, Some(2));
    assert!(c.stdout.contains("**ERROR** (exit code 2)"), "{}", c.stdout);
    assert!(c.stderr.contains("/nonexistent/kernel"), "{}", c.stderr);
    let j = c.json.unwrap();
    assert_eq!(j["result"], "error");
    assert_eq!(j["exit_code"], 2);
    assert!(j["error"]
        .as_str()
        .unwrap()
        .contains("cannot read /nonexistent/kernel"));
    assert_eq!(j["backends"], serde_json::json!([]));

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a kernel\n").unwrap();
    let g = guest("hello", &[]);
    let c = compare(&[
        os("--native"),
        g.as_os_str(),
        os("--burnt"),
        text.as_os_str(),
    ]);
    assert_eq!(c.code, Some(2));
    assert!(
        c.json.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("notes.txt"),
        "the error names the file"
    );

    for args in [
        vec![os("--native"), g.as_os_str()],
        vec![
            os("--native"),
            g.as_os_str(),
            os("--burnt"),
            g.as_os_str(),
            os("--runs"),
            os("0"),
        ],
        vec![
            os("--native"),
            g.as_os_str(),
            os("--burnt"),
            g.as_os_str(),
            os("--backends"),
            os("bare,xen"),
        ],
    ] {
        let c = compare(&args);
        assert_eq!(c.code, Some(2), "{args:?}: {}", c.stderr);
        assert!(
            c.json.is_none(),
            "no report for arguments compare cannot understand"
        );
    }
    let help = Command::new(env!("CARGO_BIN_EXE_afterburn-run"))
        .args(["compare", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--native") && help.contains("Exit codes"),
        "{help}"
    );
}

#[test]
fn a_kernel_file_named_compare_runs_as_dot_slash_compare() {
    if !kvm_or_skip("a_kernel_file_named_compare_runs_as_dot_slash_compare") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest("hello", &[]), dir.path().join("compare")).unwrap();
    let run = |arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_afterburn-run"))
            .arg(arg)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let r = run("./compare");
    assert_eq!(r.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&r.stdout), "hello from the guest\n");
    let r = run("compare");
    assert_eq!(
        r.status.code(),
        Some(2),
        "`compare` alone is the subcommand"
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("--native"));
    // compare itself runs a kernel named `compare` from the current directory.
    let out = Command::new(env!("CARGO_BIN_EXE_afterburn-run"))
        .args([
            "compare",
            "-q",
            "--native",
            "compare",
            "--burnt",
            "compare",
            "--backends",
            "bare",
            "--runs",
            "1",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bench_writes_the_whole_page_from_one_run() {
    if !kvm_or_skip("bench_writes_the_whole_page_from_one_run") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("guests");
    for sub in ["native", "burnt"] {
        std::fs::create_dir_all(g.join(sub)).unwrap();
    }
    // `same` has an afterburnt build whose timing line differs; `other` differs in a line;
    // `alone` has no afterburnt build.
    std::fs::copy(two_lines(0, 1), g.join("native/same")).unwrap();
    std::fs::copy(two_lines(0, 5), g.join("burnt/same")).unwrap();
    std::fs::copy(two_lines(0, 1), g.join("native/other")).unwrap();
    std::fs::copy(two_lines(1, 1), g.join("burnt/other")).unwrap();
    std::fs::copy(two_lines(0, 1), g.join("native/alone")).unwrap();
    std::fs::create_dir_all(dir.path().join("docs/img")).unwrap();
    let page = dir.path().join("docs/benchmarks.md");
    let svg = dir.path().join("docs/img/chart.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_afterburn-run"))
        .arg("bench")
        .arg("--guests")
        .arg(&g)
        .args([
            "--runs",
            "2",
            "--backends",
            "bare,kvm",
            "--chart-kernel",
            "same",
        ])
        .args(["--linux-build", "/nonexistent/build", "--out"])
        .arg(&page)
        .arg("--svg")
        .arg(&svg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "`other` differs: {stderr}");
    let text = std::fs::read_to_string(&page).unwrap();
    for needle in [
        "# Benchmarks",
        "host kind `",
        "afterburn-run bench --guests",
        "| alone | ",
        "**No afterburnt build of alone**",
        "| other | ",
        "**DIFFERS**",
        "| same | ",
        "identical (2 lines)",
        "## Microbench: cycles per operation (`same`)",
        "| ticks | 1 | 1 | 1 | 5 | 5 | 5 | 5.00 |",
        "![cycles per operation](img/chart.svg)",
        "## Whole kernels: wall time",
        "| same | bare | ",
        "## Exits per serial byte",
        "## Afterburner throughput",
        "no Linux build: /nonexistent/build/vmlinux.o is missing",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let kvm_skipped = text.contains("- backend `kvm`: skipped: ");
    let kvm_ran = text.contains("- backend `kvm`: ran");
    assert!(kvm_skipped != kvm_ran, "{text}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.contains("same: cycles per operation") && chart.contains("ticks"));
}
