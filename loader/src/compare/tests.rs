//! Unit tests of the judging and rendering (the runs themselves are tested end to end in
//! loader/tests/compare.rs and tests/tests/compare.rs).

use super::*;

fn rec(lines: &[&str], bench: &[(&str, f64)], exit_code: i32, wall: f64) -> RunRecord {
    RunRecord {
        exit_code,
        end_reason: if exit_code <= 99 {
            "guest_exit".into()
        } else {
            "shutdown".into()
        },
        end_description: String::new(),
        stderr_first_line: None,
        lines: lines.iter().map(|s| s.to_string()).collect(),
        bench: bench.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        wall_time_s: wall,
        process_time_s: wall + 0.01,
        serial_bytes: 40,
        insn_emulation: Some(1000),
        exits: [("exits".to_string(), 50u64), ("io_exits".to_string(), 0)]
            .into_iter()
            .collect(),
        userspace_exits: [("io_out".to_string(), 41u64)].into_iter().collect(),
        console_flushes: None,
    }
}

fn ran(r: RunRecord) -> Attempt {
    Attempt::Ran(Box::new(r))
}

fn runs(attempts: Vec<Attempt>) -> VariantRuns {
    VariantRuns { attempts }
}

const HELLO: &[&str] = &["hello from afterburn", "hello: pvh start_info magic ok"];

#[test]
fn summary_min_median_max() {
    assert_eq!(Summary::of(vec![]), None);
    let s = Summary::of(vec![3.0, 1.0, 2.0]).unwrap();
    assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
    assert_eq!(s.values, vec![3.0, 1.0, 2.0], "values stay in run order");
    let s = Summary::of(vec![4.0, 1.0, 3.0, 2.0]).unwrap();
    assert_eq!(s.median, 2.5, "even count: mean of the two middle values");
}

#[test]
fn output_is_split_into_deterministic_lines_and_bench_figures() {
    let out = b"a\nbench syscall 1301\nbench in 226\nbenchmark 3\nbench twice 1\nbench twice 2\n\
                bench bad x\nbench  spaced\nlast, no newline";
    let (lines, bench) = split_output(out);
    assert_eq!(
        lines,
        vec!["a", "benchmark 3", "last, no newline"],
        "only lines starting with `bench ` are left out"
    );
    assert_eq!(
        bench,
        vec![
            ("syscall".to_string(), 1301.0),
            ("in".to_string(), 226.0),
            ("twice".to_string(), 1.0)
        ]
    );
    let (lines, _) = split_output(b"x\n\ny\n");
    assert_eq!(lines, vec!["x", "", "y"], "empty lines count");
    let (lines, _) = split_output(b"caf\xff\r\n");
    assert_eq!(
        lines,
        vec!["caf\u{fffd}\r"],
        "bytes are kept (lossily), CR too"
    );
}

#[test]
fn stats_json_is_read_and_checked() {
    let j = serde_json::json!({
        "schema": "afterburn-run-stats/1",
        "exit_code": 0,
        "end": {"reason": "guest_exit", "description": "the guest exited with status 0"},
        "wall_time_s": 0.25,
        "serial_bytes": 52,
        "insn_emulation": 1044,
        "kvm_stats": {"exits": 60, "io_exits": 0, "halt_exits": 1, "fpu_reload": 9,
                      "halt_poll_fail_hist": [0, 1]},
        "userspace_exits": {"io_in": 3, "io_out": 53},
    });
    let r = record_from(&j, b"hello\nbench x 5\n").unwrap();
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.end_reason, "guest_exit");
    assert_eq!(r.lines, vec!["hello"]);
    assert_eq!(r.bench, vec![("x".to_string(), 5.0)]);
    assert_eq!(r.insn_emulation, Some(1044));
    assert_eq!(
        r.exits.keys().collect::<Vec<_>>(),
        vec!["exits", "halt_exits", "io_exits"],
        "exit kinds: `exits` and `*_exits` scalars only"
    );
    assert_eq!(r.userspace_exits["io_out"], 53);
    let mut bad = j.clone();
    bad["schema"] = "something/2".into();
    assert!(record_from(&bad, b"").unwrap_err().contains("schema"));
    let mut bad = j.clone();
    bad["wall_time_s"] = "soon".into();
    assert!(record_from(&bad, b"").unwrap_err().contains("wall_time_s"));
    let mut bad = j;
    bad["exit_code"] = serde_json::json!(-1);
    assert!(record_from(&bad, b"").unwrap_err().contains("exit_code"));
}

#[test]
fn identical_runs_match_with_ratios_of_one() {
    let br = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![
            ran(rec(HELLO, &[("op", 100.0)], 0, 0.002)),
            ran(rec(HELLO, &[("op", 300.0)], 0, 0.004)),
        ]),
        burnt: runs(vec![
            ran(rec(HELLO, &[("op", 200.0)], 0, 0.003)),
            ran(rec(HELLO, &[("op", 200.0)], 0, 0.003)),
        ]),
    };
    let c = analyze(&[br], None);
    assert_eq!(c.outcome, Outcome::Match);
    assert_eq!(c.exit_code(), 0);
    let b = &c.backends[0];
    assert_eq!(b.status, Status::Match);
    assert_eq!(b.baseline, Some(BackendKind::Bare));
    assert_eq!(b.compared_lines, 2);
    let r = b.ratios.as_ref().unwrap();
    assert_eq!(r.bench, vec![("op".to_string(), Some(1.0))]);
    assert!((r.wall_time_s.unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(r.exits["exits"], Some(1.0));
    assert_eq!(r.exits["io_exits"], None, "a zero baseline gives no ratio");
    let nf = b.native.figures.as_ref().unwrap();
    assert_eq!(nf.bench[0].1.median, 200.0);
    assert_eq!(nf.bench[0].1.values, vec![100.0, 300.0]);
}

#[test]
fn a_different_line_is_a_mismatch_naming_the_line() {
    let br = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![ran(rec(HELLO, &[], 0, 0.002))]),
        burnt: runs(vec![ran(rec(
            &["hello from afterburn", "hello: something else"],
            &[],
            0,
            0.002,
        ))]),
    };
    let c = analyze(&[br], None);
    assert_eq!(c.outcome, Outcome::Mismatch);
    assert_eq!(c.exit_code(), 1);
    let d = &c.backends[0].differences;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].variant, Variant::Burnt);
    assert_eq!(d[0].run, 1);
    assert_eq!(d[0].kind, DifferenceKind::Output);
    assert_eq!(d[0].line, Some(2));
    assert_eq!(
        d[0].expected.as_deref(),
        Some("hello: pvh start_info magic ok")
    );
    assert_eq!(d[0].actual.as_deref(), Some("hello: something else"));
    let md = report::markdown(&c);
    assert!(md.contains("**MISMATCH**"), "{md}");
    assert!(md.contains("line 2"), "{md}");
    assert!(md.contains("`hello: something else`"), "{md}");
}

#[test]
fn a_missing_line_and_a_different_end_are_mismatches() {
    let br = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![ran(rec(HELLO, &[], 0, 0.002))]),
        burnt: runs(vec![
            ran(rec(&HELLO[..1], &[], 101, 0.002)),
            ran(rec(HELLO, &[], 101, 0.002)),
        ]),
    };
    let c = analyze(&[br], None);
    let d = &c.backends[0].differences;
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].kind, d[0].line, d[0].actual.as_deref()),
        (DifferenceKind::Output, Some(2), None),
        "output first: the burnt kernel stopped after line 1"
    );
    assert_eq!(d[1].kind, DifferenceKind::End);
    assert_eq!(d[1].run, 2);
    assert_eq!(d[1].expected.as_deref(), Some("exit code 0 (guest_exit)"));
    assert_eq!(d[1].actual.as_deref(), Some("exit code 101 (shutdown)"));
}

#[test]
fn native_runs_that_disagree_with_each_other_are_reported() {
    let br = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![
            ran(rec(HELLO, &[], 0, 0.002)),
            ran(rec(&["hello from afterburn", "flaky"], &[], 0, 0.002)),
        ]),
        burnt: runs(vec![
            ran(rec(HELLO, &[], 0, 0.002)),
            ran(rec(HELLO, &[], 0, 0.002)),
        ]),
    };
    let c = analyze(&[br], None);
    assert_eq!(c.outcome, Outcome::Mismatch);
    let d = &c.backends[0].differences;
    assert_eq!(
        (d[0].variant, d[0].run, d[0].line),
        (Variant::Native, 2, Some(2))
    );
}

#[test]
fn backends_that_cannot_start_either_kernel_are_skipped_with_the_reason() {
    let nope = "the kvm backend is not implemented yet";
    let bare = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![ran(rec(HELLO, &[], 0, 0.002))]),
        burnt: runs(vec![ran(rec(HELLO, &[], 0, 0.002))]),
    };
    let kvm = BackendRuns {
        backend: BackendKind::Kvm,
        native: runs(vec![Attempt::StartFailed(nope.into())]),
        burnt: runs(vec![Attempt::StartFailed(nope.into())]),
    };
    let c = analyze(&[bare, kvm.clone()], None);
    assert_eq!(c.outcome, Outcome::Match);
    let k = &c.backends[1];
    assert_eq!(k.status, Status::Skipped);
    assert_eq!(k.skip_reason.as_deref(), Some(nope));
    assert_eq!(k.baseline, None);
    assert!(report::markdown(&c).contains(&format!("- `kvm`: {nope}")));
    // Nothing at all could run: that is an error, not a pass.
    let c = analyze(&[kvm], None);
    assert_eq!(c.exit_code(), 2);
    match &c.outcome {
        Outcome::Error(e) => assert!(e.contains("no backend could run") && e.contains(nope)),
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_burnt_kernel_that_cannot_start_where_the_native_one_ran_is_a_mismatch() {
    let br = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![ran(rec(HELLO, &[], 0, 0.002))]),
        burnt: runs(vec![Attempt::StartFailed("bad segment".into())]),
    };
    let c = analyze(&[br], None);
    assert_eq!(c.outcome, Outcome::Mismatch);
    let d = &c.backends[0].differences[0];
    assert_eq!(d.kind, DifferenceKind::Start);
    assert_eq!(d.actual.as_deref(), Some("could not start: bad segment"));
}

#[test]
fn a_backend_that_runs_only_the_burnt_kernel_is_compared_with_native_elsewhere() {
    // The kvm backend needs annotations: the native kernel cannot start there.
    let bare = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![ran(rec(HELLO, &[("op", 1000.0)], 0, 0.010))]),
        burnt: runs(vec![ran(rec(HELLO, &[("op", 1000.0)], 0, 0.010))]),
    };
    let kvm = BackendRuns {
        backend: BackendKind::Kvm,
        native: runs(vec![Attempt::StartFailed("no .afterburn section".into())]),
        burnt: runs(vec![ran(rec(HELLO, &[("op", 100.0)], 0, 0.001))]),
    };
    let c = analyze(&[kvm.clone(), bare.clone()], None);
    assert_eq!(c.outcome, Outcome::Match);
    let k = &c.backends[0];
    assert_eq!(k.status, Status::Match);
    assert_eq!(k.baseline, Some(BackendKind::Bare));
    assert_eq!(
        k.native.unavailable.as_deref(),
        Some("no .afterburn section")
    );
    let r = k.ratios.as_ref().unwrap();
    assert_eq!(r.bench, vec![("op".to_string(), Some(0.1))]);
    assert!((r.wall_time_s.unwrap() - 0.1).abs() < 1e-9);
    // ... and a different output there is still caught.
    let mut kvm_bad = kvm;
    kvm_bad.burnt = runs(vec![ran(rec(&["hello from afterburn"], &[], 0, 0.001))]);
    let c = analyze(&[bare, kvm_bad], None);
    assert_eq!(c.outcome, Outcome::Mismatch);
    assert_eq!(c.backends[1].differences[0].line, Some(2));
}

#[test]
fn an_error_wins_over_everything() {
    let br = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![ran(rec(HELLO, &[], 0, 0.002))]),
        burnt: runs(vec![]),
    };
    let c = analyze(&[br], Some("afterburn-run was killed".into()));
    assert_eq!(c.exit_code(), 2);
    assert_eq!(report::json(&c)["error"], "afterburn-run was killed");
}

#[test]
fn utc_dates() {
    assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
    assert_eq!(utc_from_unix(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(utc_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(utc_from_unix(4_107_542_399), "2100-02-28T23:59:59Z");
    assert_eq!(utc_from_unix(4_107_542_400), "2100-03-01T00:00:00Z");
}

#[test]
fn guest_text_in_markdown_cannot_break_out() {
    use report::code;
    assert_eq!(code("plain"), "`plain`");
    assert_eq!(code("a|b"), "`a\\|b`");
    assert_eq!(code("x`y"), "``x`y``");
    assert_eq!(code("`x"), "`` `x ``");
    assert_eq!(code("bell\x07\r"), "`bell\\x07\\x0d`");
    assert_eq!(code(""), "(empty line)");
    assert!(code(&"z".repeat(500)).chars().count() < 170);
}

#[test]
fn numbers_in_markdown() {
    use report::num;
    assert_eq!(num(0.0), "0");
    assert_eq!(num(999.0), "999");
    assert_eq!(num(1000.0), "1,000");
    assert_eq!(num(276_919.0), "276,919");
    assert_eq!(num(1_234_567.0), "1,234,567");
    assert_eq!(num(2.5), "2.50");
    assert_eq!(num(1234.5), "1,235");
    assert_eq!(num(99.5), "99.50");
}

#[test]
fn the_chart_has_one_bar_per_series_and_name_and_escapes_text() {
    let br = BackendRuns {
        backend: BackendKind::Bare,
        native: runs(vec![ran(rec(
            HELLO,
            &[("a<b", 10.0), ("cpuid", 4500.0)],
            0,
            0.002,
        ))]),
        burnt: runs(vec![ran(rec(
            HELLO,
            &[("a<b", 12.0), ("cpuid", 4600.0)],
            0,
            0.002,
        ))]),
    };
    let mut c = analyze(&[br], None);
    c.host = "pvm".into();
    c.native = "k/native/microbench".into();
    c.burnt = "k/burnt/microbench".into();
    let s = svg::chart(&svg::ChartInput::from(&c));
    assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(s.trim_end().ends_with("</svg>"));
    assert_eq!(s.matches("<title>").count(), 4, "2 series x 2 names");
    assert!(s.contains("a&lt;b") && !s.contains("a<b"));
    assert!(s.contains("bare native") && s.contains("bare burnt"));
    assert!(s.contains("(host pvm)"));
    assert!(
        s.contains(">10<") && s.contains(">10k<"),
        "decade labels 10..10k"
    );
    // Taller bars for larger values: the cpuid bars start higher than the a<b bars.
    let ys: Vec<f64> = s
        .lines()
        .filter(|l| l.contains("<title>"))
        .map(|l| {
            let y = l.split(" y=\"").nth(1).unwrap();
            y[..y.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    assert!(ys[2] < ys[0] && ys[3] < ys[1], "{ys:?}");
}
