//! The burnt build path, driven by stand-in afterburners (shell scripts), since the real one is
//! a separate crate: every object goes through `AFTERBURNER burn IN -o OUT`, the burnt objects
//! are linked like the native ones, and a failing burn leaves nothing under a final name.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("guests-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn identity_afterburner_gives_the_native_kernel() {
    let tmp = TempDir::new("identity");
    let log = tmp.0.join("calls");
    let ab = script(
        &tmp.0,
        "afterburner",
        &format!(
            "[ \"$1\" = burn ] && [ \"$3\" = -o ] && [ $# -eq 4 ] || exit 2\n\
             echo \"$2\" >> '{}'\ncp \"$2\" \"$4\"",
            log.display()
        ),
    );
    let out = tmp.0.join("guests");
    let mut opts = guests::BuildOptions::new(&out);
    opts.afterburner = Some(ab);
    opts.kernels = vec!["hello".into(), "paging".into()];
    let built = guests::build_all(&opts).unwrap();
    assert_eq!(built.len(), 2);

    let calls = fs::read_to_string(&log).unwrap();
    for b in &built {
        let kernel = guests::kernel(b.name).unwrap();
        let burnt = b.burnt.as_ref().expect("burnt kernel");
        assert_eq!(burnt, &out.join("burnt").join(b.name));
        assert_eq!(b.native, out.join("native").join(b.name));
        // Same objects, same order, same script: the same bytes.
        assert_eq!(
            fs::read(burnt).unwrap(),
            fs::read(&b.native).unwrap(),
            "{}",
            b.name
        );
        let objs: Vec<String> = kernel
            .sources
            .iter()
            .map(|s| format!("{}.o", Path::new(s).file_stem().unwrap().to_string_lossy()))
            .collect();
        let mut sorted = objs.clone();
        sorted.sort();
        assert_eq!(files_in(&out.join("obj").join(b.name)), sorted);
        assert_eq!(files_in(&out.join("obj-burnt").join(b.name)), sorted);
        for o in &objs {
            let native_obj = out.join("obj").join(b.name).join(o);
            let n = calls.lines().filter(|l| Path::new(l) == native_obj).count();
            assert_eq!(n, 1, "{} burnt {n} times", native_obj.display());
        }
    }
}

#[test]
fn failing_afterburner_names_the_object_and_leaves_no_output() {
    let tmp = TempDir::new("failing");
    // Writes half an object, then fails on the third object.
    let ab = script(
        &tmp.0,
        "afterburner",
        "case \"$2\" in *serial.o) echo partial > \"$4\"; echo \"serial.o: cannot burn\" >&2; exit 1;; esac\ncp \"$2\" \"$4\"",
    );
    let out = tmp.0.join("guests");
    let mut opts = guests::BuildOptions::new(&out);
    opts.afterburner = Some(ab);
    opts.kernels = vec!["hello".into()];
    let err = guests::build_all(&opts).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("burning") && msg.contains("serial.o"), "{msg}");
    assert!(
        msg.contains("cannot burn"),
        "the afterburner's own message is kept: {msg}"
    );
    let burnt_objs = files_in(&out.join("obj-burnt/hello"));
    assert_eq!(
        burnt_objs,
        ["boot32.o", "head64.o"],
        "no partial serial.o, no temporary files"
    );
    assert!(!out.join("burnt/hello").exists());
    // The native kernel was built before burning started.
    assert!(out.join("native/hello").is_file());
}

#[test]
fn missing_afterburner_is_an_error() {
    let tmp = TempDir::new("missing");
    let mut opts = guests::BuildOptions::new(tmp.0.join("guests"));
    opts.afterburner = Some(tmp.0.join("no-such-afterburner"));
    let msg = guests::build_all(&opts).unwrap_err().to_string();
    assert!(msg.contains("no-such-afterburner"), "{msg}");
}

#[test]
fn compile_errors_name_the_source_and_show_the_compiler_output() {
    let tmp = TempDir::new("cc-error");
    // A "compiler" that fails like gcc does.
    let cc = script(
        &tmp.0,
        "cc",
        "case \"$*\" in *--version*) exit 0;; esac\necho 'lib.c:1: error: boom' >&2\nexit 1",
    );
    let mut opts = guests::BuildOptions::new(tmp.0.join("guests"));
    opts.cc = cc.into_os_string();
    opts.kernels = vec!["hello".into()];
    let msg = guests::build_all(&opts).unwrap_err().to_string();
    assert!(msg.contains("compiling common/boot32.S for hello"), "{msg}");
    assert!(msg.contains("error: boom"), "{msg}");
    assert!(
        files_in(&tmp.0.join("guests/obj/hello")).is_empty(),
        "no temporary objects left"
    );
}
