//! The two front ends of the afterburner against each other on the example kernels: the object
//! post-pass (`afterburner burn` of the native objects) and the assembler wrapper (`gcc -B DIR/`
//! with `afterburner install-as DIR`, so `afterburner as` assembles every C and `.S` file).
//!
//! Both must annotate the same sensitive sites, compared per object by section, function and
//! instruction bytes (not address; `afterburner::sitediff`), every disagreement reported; and
//! both afterburnt kernels must boot under QEMU TCG with the native kernel's output.
//!
//! qemu-system-x86_64 is required (Debian package `qemu-system-x86`).

use afterburn_tests::{deterministic, qemu_command, require_qemu, run_with_timeout, workspace_bin};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn objects(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        .collect();
    v.sort();
    v
}

fn has_afterburn(obj: &Path) -> bool {
    let out = Command::new("readelf").arg("-SW").arg(obj).output().unwrap();
    assert!(out.status.success(), "readelf -SW {}", obj.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|w| w == ".afterburn")
}

fn boot(kernel: &Path) -> (Option<i32>, Vec<String>, String) {
    let run = run_with_timeout(qemu_command(kernel), TIMEOUT)
        .unwrap_or_else(|| panic!("{}: no exit after {TIMEOUT:?} under QEMU", kernel.display()));
    let lines = deterministic(&run.stdout)
        .into_iter()
        .map(str::to_string)
        .collect();
    (run.code, lines, run.stdout)
}

#[test]
fn object_burner_and_assembler_wrapper_agree_on_the_example_kernels() {
    require_qemu();
    let ab = workspace_bin("afterburner", "afterburner");
    let tmp = tempfile::tempdir().unwrap();
    let shim_dir = tmp.path().join("as-shim");
    let st = Command::new(&ab)
        .arg("install-as")
        .arg(&shim_dir)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let cc = tmp.path().join("gcc-afterburner");
    std::fs::write(
        &cc,
        format!("#!/bin/sh\nexec gcc -B '{}/' \"$@\"\n", shim_dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&cc, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Object route: native objects, then `afterburner burn`.
    let mut a = guests::BuildOptions::new(tmp.path().join("object-route"));
    a.afterburner = Some(ab.clone());
    let built_a = guests::build_all(&a).unwrap_or_else(|e| panic!("object route: {e}"));
    // Assembler route: the "native" build of a gcc whose assembler is `afterburner as`.
    let mut b = guests::BuildOptions::new(tmp.path().join("as-route"));
    b.cc = cc.into_os_string();
    let built_b = guests::build_all(&b).unwrap_or_else(|e| panic!("assembler route: {e}"));

    let mut disagreements = Vec::new();
    let mut agree = 0;
    for (ka, kb) in built_a.iter().zip(&built_b) {
        assert_eq!(ka.name, kb.name);
        assert!(
            !kb.warnings.contains("afterburner as: WARNING"),
            "{}: the wrapper assembled an input unpadded:\n{}",
            kb.name,
            kb.warnings
        );
        let burnt_objs = objects(&a.out_root.join("obj-burnt").join(ka.name));
        let wrapped_objs = objects(&b.out_root.join("obj").join(kb.name));
        assert_eq!(
            burnt_objs.iter().map(|p| p.file_name()).collect::<Vec<_>>(),
            wrapped_objs
                .iter()
                .map(|p| p.file_name())
                .collect::<Vec<_>>()
        );
        for (oa, ob) in burnt_objs.iter().zip(&wrapped_objs) {
            // Both front ends write a chunk for every object they process, even without sites.
            assert_eq!(
                has_afterburn(oa),
                has_afterburn(ob),
                "{}: .afterburn in only one of {} and {}",
                ka.name,
                oa.display(),
                ob.display()
            );
            let d = afterburner::sitediff::diff_files(oa, ob)
                .unwrap_or_else(|e| panic!("site-diff {} {}: {e}", oa.display(), ob.display()));
            agree += d.same;
            for l in &d.lines {
                disagreements.push(format!(
                    "{}/{}: {l}",
                    ka.name,
                    oa.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    eprintln!(
        "example kernels: {agree} sites agree, {} disagree (A = afterburner burn, B = afterburner as)",
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "the two front ends disagree:\n{}",
        disagreements.join("\n")
    );
    assert!(agree > 50, "only {agree} sites in all example kernels");

    for (ka, kb) in built_a.iter().zip(&built_b) {
        let (nc, native, _) = boot(&ka.native);
        assert_eq!(
            nc,
            Some(1),
            "{}: native kernel did not exit with status 0",
            ka.name
        );
        let burnt = ka.burnt.as_ref().unwrap();
        for (route, kernel) in [("afterburner burn", burnt), ("afterburner as", &kb.native)] {
            let (code, lines, raw) = boot(kernel);
            assert_eq!(
                code,
                Some(1),
                "{} ({route}): QEMU exit {code:?}, expected 1 (status 0)\n{raw}",
                ka.name
            );
            assert_eq!(
                lines, native,
                "{} ({route}): output differs from native",
                ka.name
            );
        }
    }
}
