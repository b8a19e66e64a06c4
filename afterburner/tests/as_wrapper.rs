//! `afterburner as` end to end: `gcc -B DIR/` with the installed shim compiles C (inline
//! assembly) and `.S` files into objects that annotate the same sites as `afterburner burn` of
//! the native objects, pass `afterburner verify --realign`, honour `.afterburn_noannotate`,
//! and say loudly when an input is assembled unpadded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const AB: &str = env!("CARGO_BIN_EXE_afterburner");

struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("afb-as-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
    fn p(&self, n: &str) -> PathBuf {
        self.0.join(n)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn install(t: &Tmp) -> PathBuf {
    let dir = t.p("bin");
    ok(Command::new(AB).arg("install-as").arg(&dir));
    assert!(dir.join("as").exists());
    dir
}

fn gcc(dir: Option<&Path>, src: &Path, out: &Path) -> Output {
    let mut c = Command::new("gcc");
    if let Some(d) = dir {
        c.arg(format!("-B{}/", d.display()));
    }
    ok(c.args(["-O2", "-g", "-ffreestanding", "-fno-pic", "-c"])
        .arg(src)
        .arg("-o")
        .arg(out))
}

fn has_section(obj: &Path, name: &str) -> bool {
    let out = ok(Command::new("readelf").arg("-SW").arg(obj));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|w| w == name)
}

fn text_bytes(obj: &Path) -> String {
    let out = ok(Command::new("objdump").args(["-d", "-j", ".text"]).arg(obj));
    // Skip the header line that names the file.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(2)
        .collect::<Vec<_>>()
        .join("\n")
}

const C_SOURCE: &str = r#"
static inline void cli(void) { asm volatile("cli" ::: "memory"); }
static inline unsigned long cr3(void) { unsigned long v; asm volatile("mov %%cr3, %0" : "=r"(v)); return v; }
unsigned long f(int x) { cli(); if (x) asm volatile("sti; hlt"); return cr3(); }
void g(int n) { for (int i = 0; i < n; i++) asm volatile("outb %%al, $0x80" :: "a"(i)); }
void h(void *p) { asm volatile("lgdt (%0); invlpg (%0); rep insb" :: "r"(p) : "memory"); }
"#;

#[test]
fn gcc_b_c_file_matches_burn_and_verifies() {
    let t = Tmp::new("c");
    let bin = install(&t);
    let src = t.p("foo.c");
    std::fs::write(&src, C_SOURCE).unwrap();
    let native = t.p("native.o");
    let wrapped = t.p("wrapped.o");
    let burnt = t.p("burnt.o");
    gcc(None, &src, &native);
    let out = gcc(Some(&bin), &src, &wrapped);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("WARNING"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(has_section(&wrapped, ".afterburn"));
    ok(Command::new(AB)
        .arg("burn")
        .arg(&native)
        .arg("-o")
        .arg(&burnt));
    let d = ok(Command::new(AB).arg("site-diff").arg(&burnt).arg(&wrapped));
    let text = String::from_utf8_lossy(&d.stdout);
    // cli, sti;hlt, mov cr3, out, lgdt, invlpg, rep insb
    assert!(text.contains("7 sites agree, 0 disagree"), "{text}");
    let v = ok(Command::new(AB)
        .args(["verify", "--realign"])
        .arg(&native)
        .arg(&wrapped));
    assert!(String::from_utf8_lossy(&v.stdout).contains("verify: OK"));
}

#[test]
fn site_diff_reports_a_missing_site_by_function() {
    let t = Tmp::new("diff");
    let bin = install(&t);
    let a = t.p("a.c");
    let b = t.p("b.c");
    std::fs::write(&a, "void f(void) { asm volatile(\"cli; nop; sti\"); }\n").unwrap();
    std::fs::write(&b, "void f(void) { asm volatile(\"cli; nop; nop\"); }\n").unwrap();
    gcc(Some(&bin), &a, &t.p("a.o"));
    gcc(Some(&bin), &b, &t.p("b.o"));
    let d = run(Command::new(AB)
        .arg("site-diff")
        .arg(t.p("a.o"))
        .arg(t.p("b.o")));
    assert_eq!(d.status.code(), Some(1));
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(text.contains("only in A: .text f [fb]#0 sti"), "{text}");
    assert!(text.contains("1 sites agree, 1 disagree"), "{text}");
}

#[test]
fn noannotate_input_is_assembled_as_is() {
    let t = Tmp::new("noann");
    let bin = install(&t);
    let src = t.p("n.S");
    std::fs::write(
        &src,
        "\t.pushsection .afterburn_noannotate,\"\",@progbits\n\t.popsection\n\t.text\nf:\tcli\n\tret\n\t.code32\ng:\tcli\n",
    )
    .unwrap();
    gcc(None, &src, &t.p("plain.o"));
    let out = gcc(Some(&bin), &src, &t.p("wrapped.o"));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!has_section(&t.p("wrapped.o"), ".afterburn"));
    assert_eq!(text_bytes(&t.p("plain.o")), text_bytes(&t.p("wrapped.o")));
}

#[test]
fn unsupported_input_warns_loudly_names_the_source_line_and_strict_refuses() {
    let t = Tmp::new("code32");
    let bin = install(&t);
    let src = t.p("m.S");
    std::fs::write(
        &src,
        "#define X 1\n\t.text\nf:\tcli\n\tret\n\n\t.code32\ng:\tcli\n",
    )
    .unwrap();
    gcc(None, &src, &t.p("plain.o"));
    let out = gcc(Some(&bin), &src, &t.p("wrapped.o"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("afterburner as: WARNING: ")
            && err.contains("m.S:6 ")
            && err.contains("directive .code32"),
        "{err}"
    );
    assert!(err.contains("UNPADDED"), "{err}");
    assert_eq!(text_bytes(&t.p("plain.o")), text_bytes(&t.p("wrapped.o")));
    let strict = run(Command::new("gcc")
        .env("AFTERBURNER_AS_STRICT", "1")
        .arg(format!("-B{}/", bin.display()))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(t.p("strict.o")));
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("AFTERBURNER_AS_STRICT"));
    // Outputs named by AFTERBURNER_AS_SKIP are plain `as` output, without a word.
    let skip = run(Command::new("gcc")
        .env("AFTERBURNER_AS_SKIP", "nothing/*:*/skipped.o")
        .arg(format!("-B{}/", bin.display()))
        .args(["-O2", "-g", "-ffreestanding", "-fno-pic", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(t.p("skipped.o")));
    assert!(skip.status.success() && skip.stderr.is_empty(), "{skip:?}");
    assert_eq!(text_bytes(&t.p("plain.o")), text_bytes(&t.p("skipped.o")));
}

/// `(file, line)` of every row of the line tables, in order, and the CU's names.
fn line_rows(obj: &Path) -> (Vec<String>, Vec<String>) {
    let out = ok(Command::new("readelf")
        .arg("--debug-dump=decodedline,info")
        .arg(obj));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = text
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[1].parse::<u32>().is_ok() && w[2].starts_with("0x"))
                .then(|| format!("{} {}", w[0], w[1]))
        })
        .collect();
    let names = text
        .lines()
        .filter(|l| l.contains("DW_AT_name") || l.contains("DW_AT_comp_dir"))
        .map(|l| l.split("): ").last().unwrap_or(l).trim().to_string())
        .collect();
    (rows, names)
}

#[test]
fn dwarf_of_s_files_names_the_source_as_plain_as_does() {
    let t = Tmp::new("dwarf");
    let bin = install(&t);
    let src = t.p("d.S");
    std::fs::write(
        &src,
        concat!(
            "#include \"d.h\"\n",
            ".macro OFF\n\tcli\n.endm\n",
            "\t.text\n\t.globl f\n\t.type f, @function\nf:\tnop\n",
            "\tOFF\n",
            "\t.rept 2\n\tout %al, $0x80\n\tnop\n\t.endr\n",
            "\tret\n\t.size f, .-f\n",
        ),
    )
    .unwrap();
    std::fs::write(t.p("d.h"), "#define X 1\n").unwrap();
    // Without sites: plain as's object plus an empty chunk (as `afterburner burn` writes).
    let quiet = t.p("q.S");
    std::fs::write(&quiet, "\t.text\n.macro N\n\tnop\n.endm\nf:\tN\n\tN\n\tret\n").unwrap();
    gcc(None, &quiet, &t.p("q-plain.o"));
    gcc(Some(&bin), &quiet, &t.p("q-wrapped.o"));
    assert_eq!(text_bytes(&t.p("q-plain.o")), text_bytes(&t.p("q-wrapped.o")));
    assert_eq!(line_rows(&t.p("q-plain.o")), line_rows(&t.p("q-wrapped.o")));
    let sections = ok(Command::new("readelf").arg("-SW").arg(t.p("q-wrapped.o")));
    let sections = String::from_utf8_lossy(&sections.stdout);
    let chunk = sections
        .lines()
        .find(|l| l.contains(" .afterburn "))
        .unwrap_or_else(|| panic!("no .afterburn:\n{sections}"));
    // [Nr] Name Type Address Off Size ...: one 16-byte header, no records.
    let fields = chunk.split(']').nth(1).unwrap_or_default();
    assert_eq!(fields.split_whitespace().nth(4), Some("000010"), "{chunk}");
    // With sites: the same rows (file, line) and the same CU names.
    gcc(None, &src, &t.p("plain.o"));
    let out = gcc(Some(&bin), &src, &t.p("wrapped.o"));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(has_section(&t.p("wrapped.o"), ".afterburn"));
    let (pr, pn) = line_rows(&t.p("plain.o"));
    let (wr, wn) = line_rows(&t.p("wrapped.o"));
    assert!(pr.len() >= 5, "{pr:?}");
    assert_eq!(pr, wr);
    assert_eq!(pn, wn);
    assert!(!wn.iter().any(|n| n.contains("afterburner-as")), "{wn:?}");
    // C with inline assembly (gcc's `# 0 "" 2` markers after each asm block): the same too.
    let c = t.p("c.c");
    std::fs::write(&c, C_SOURCE).unwrap();
    gcc(None, &c, &t.p("c-plain.o"));
    gcc(Some(&bin), &c, &t.p("c-wrapped.o"));
    assert_eq!(line_rows(&t.p("c-plain.o")), line_rows(&t.p("c-wrapped.o")));
}

#[test]
fn stdin_input_and_shim_first_in_path() {
    let t = Tmp::new("stdin");
    let bin = install(&t);
    // The shim first in PATH must not be taken for the real `as` (no endless recursion).
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(AB)
        .env("PATH", path)
        .env_remove("AFTERBURNER_AS")
        .args(["as", "--64", "-o"])
        .arg(t.p("s.o"))
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\t.text\nf:\tcli\n\tret\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let d = text_bytes(&t.p("s.o"));
    assert!(d.contains("cli") && d.contains("nop"), "{d}");
    assert!(has_section(&t.p("s.o"), ".afterburn"));
    // Errors in the input are as's own.
    let src = t.p("bad.s");
    std::fs::write(&src, "\tnosuchinsn %eax\n").unwrap();
    let out = run(Command::new(AB)
        .arg("as")
        .arg("-o")
        .arg(t.p("bad.o"))
        .arg(&src));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchinsn"));
}

#[test]
fn macros_rept_and_irp_are_padded_and_match_burn() {
    let t = Tmp::new("macro-ok");
    let bin = install(&t);
    let src = t.p("k.S");
    std::fs::write(
        &src,
        concat!(
            ".macro IRQ_OFF\n\tcli\n.endm\n",
            ".macro TABLE n\n\t.pushsection .rodata\n\t.long \\n\n\t.popsection\n.endm\n",
            // A site in the middle of an expansion, one in .altinstr_replacement, \\@ labels,
            // a conditional on an argument (Linux's ALTERNATIVE and entry macros in small).
            ".macro ALT old, new\n740:\n\t\\old\n741:\n",
            "\t.skip -(((744f-743f)-(741b-740b)) > 0) * ((744f-743f)-(741b-740b)),0x90\n742:\n",
            "\t.pushsection .altinstructions,\"a\"\n\t.long 740b - ., 743f - .\n\t.4byte 0\n",
            "\t.byte 742b-740b, 744f-743f\n\t.popsection\n",
            "\t.pushsection .altinstr_replacement,\"ax\"\n743:\n\t\\new\n744:\n\t.popsection\n.endm\n",
            ".macro SAVE swap=1\n.Lsave_\\@:\n.if \\swap\n\tswapgs\n.endif\n\tpush %rax\n\tALT \"\", \"stac\"\n\tpop %rax\n.endm\n",
            "\t.text\n\t.globl f\n\t.type f, @function\nf:\tIRQ_OFF\n\tTABLE 3\n",
            "\t.rept 3\n\tout %al, $0x80\n\t.endr\n",
            "\t.irp r, ax, bx\n\tpush %r\\r\n\t.endr\n",
            "\tSAVE\n\tSAVE swap=0\n",
            "\tret\n\t.size f, .-f\n",
        ),
    )
    .unwrap();
    gcc(None, &src, &t.p("native.o"));
    let out = gcc(Some(&bin), &src, &t.p("wrapped.o"));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(Command::new(AB)
        .arg("burn")
        .arg(t.p("native.o"))
        .arg("-o")
        .arg(t.p("burnt.o")));
    let d = ok(Command::new(AB)
        .arg("site-diff")
        .arg(t.p("burnt.o"))
        .arg(t.p("wrapped.o")));
    let text = String::from_utf8_lossy(&d.stdout);
    // cli, 3 x out, swapgs, 2 x stac (in .altinstr_replacement)
    assert!(text.contains("7 sites agree, 0 disagree"), "{text}");
    let v = ok(Command::new(AB)
        .args(["verify", "--realign"])
        .arg(t.p("native.o"))
        .arg(t.p("wrapped.o")));
    assert!(String::from_utf8_lossy(&v.stdout).contains("verify: OK"));
}
