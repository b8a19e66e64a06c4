//! Shared helpers of the burn tests: build inputs with gcc/as, run the `afterburner` binary,
//! and read objects back with GNU binutils (objdump, readelf, objcopy), which are the
//! independent oracle: nothing here uses the afterburner library to judge its own output.
#![allow(dead_code)]

use annotations::{SiteRecord, Sites};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory for one test.
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Self {
        Work { dir: tempfile::tempdir().expect("temp dir") }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// Path of a file under `tests/inputs/`.
pub fn input(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inputs").join(name)
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (gcc and binutils are required)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// Compiles C to an object.
pub fn cc(src: &Path, obj: &Path, flags: &[&str]) {
    run(Command::new("gcc").args(flags).arg("-c").arg(src).arg("-o").arg(obj));
}

/// Assembles a `.S`/`.s` file.
pub fn assemble(src: &Path, obj: &Path) {
    run(Command::new("gcc").arg("-c").arg(src).arg("-o").arg(obj));
}

/// The afterburner binary.
pub fn afterburner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_afterburner"))
}

/// Burns `input` into `output` with the binary; returns its stdout.
pub fn burn(input: &Path, output: &Path) -> String {
    let out = run(afterburner().arg("burn").arg(input).arg("-o").arg(output));
    String::from_utf8(out.stdout).unwrap()
}

/// One instruction as objdump prints it.
#[derive(Clone, Debug)]
pub struct Insn {
    pub offset: u64,
    /// Offset of the next instruction (its end).
    pub end: u64,
    /// Text with displacements of RIP-relative operands and branch targets taken out.
    pub text: String,
    /// Direct branch/call target, or RIP-relative target without a relocation.
    pub target: Option<u64>,
    /// Relocations inside it: (offset, type, symbol, addend).
    pub relocs: Vec<(u64, String, String, i64)>,
    pub nop: bool,
}

fn parse_sym_addend(s: &str) -> (String, i64) {
    // `sym+0x10`, `sym-0x4`, `sym`
    let s = s.trim();
    if let Some(i) = s.rfind(['+', '-']) {
        if i > 0 && s[i + 1..].starts_with("0x") {
            if let Ok(v) = i64::from_str_radix(&s[i + 3..], 16) {
                let v = if &s[i..i + 1] == "-" { -v } else { v };
                return (s[..i].to_owned(), v);
            }
        }
    }
    (s.to_owned(), 0)
}

fn is_nop(text: &str) -> bool {
    let mut words = text.split_whitespace();
    let mut m = words.next().unwrap_or("");
    while matches!(m, "data16" | "cs" | "ds" | "es" | "ss") {
        m = words.next().unwrap_or("");
    }
    m.starts_with("nop") || text.split_whitespace().collect::<Vec<_>>() == ["xchg", "%ax,%ax"]
}

fn is_branch_mnemonic(m: &str) -> bool {
    let m = m.split_whitespace().last().unwrap_or("");
    m.starts_with('j') || m.starts_with("call") || m.starts_with("loop") || m.starts_with("xbegin")
}

/// `objdump -dr` of every code section: section name → instructions.
pub fn disasm(obj: &Path) -> BTreeMap<String, Vec<Insn>> {
    let text = stdout(Command::new("objdump").args(["-dr", "--no-show-raw-insn", "-z"]).arg(obj));
    let mut out: BTreeMap<String, Vec<Insn>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Disassembly of section ") {
            section = rest.trim_end_matches(':').to_owned();
            out.entry(section.clone()).or_default();
            continue;
        }
        let t = line.trim_start();
        let Some((addr, rest)) = t.split_once(':') else { continue };
        let Ok(offset) = u64::from_str_radix(addr, 16) else { continue };
        if addr.len() >= 16 {
            continue; // symbol line `0000000000000000 <f>:`
        }
        let rest = rest.trim_start_matches([' ', '\t']);
        let insns = out.entry(section.clone()).or_default();
        if rest.starts_with("R_X86_64_") {
            let mut it = rest.split_whitespace();
            let ty = it.next().unwrap().to_owned();
            let (sym, add) = parse_sym_addend(it.next().unwrap_or(""));
            if let Some(last) = insns.last_mut() {
                last.relocs.push((offset, ty, sym, add));
            }
            continue;
        }
        if rest.is_empty() {
            continue;
        }
        let (body, comment) = match rest.split_once(" # ") {
            Some((b, c)) => (b.trim_end(), Some(c.trim())),
            None => (rest.trim_end(), None),
        };
        let mut text = body.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut target = None;
        // direct branch: `jne 3c <f+0x3c>`
        if let Some(lt) = text.find(" <") {
            let head = &text[..lt];
            if let Some((m, a)) = head.rsplit_once(' ') {
                if is_branch_mnemonic(m) {
                    if let Ok(a) = u64::from_str_radix(a, 16) {
                        target = Some(a);
                        text = m.to_owned();
                    }
                }
            }
        }
        if text.contains("(%rip)") {
            // take the displacement out: `mov 0x10(%rip),%eax` → `mov X(%rip),%eax`
            if let Some(p) = text.find("(%rip)") {
                let start = text[..p].rfind([' ', ',']).map_or(0, |i| i + 1);
                text.replace_range(start..p, "X");
            }
            if let Some(c) = comment {
                let a = c.split_whitespace().next().unwrap_or("");
                target = u64::from_str_radix(a, 16).ok();
            }
        }
        if let Some(prev) = insns.last_mut() {
            prev.end = offset;
        }
        let nop = is_nop(&text);
        insns.push(Insn { offset, end: offset, text, target, relocs: Vec::new(), nop });
    }
    // the last instruction's end: from section sizes
    let sizes = section_sizes(obj);
    for (s, v) in out.iter_mut() {
        if let (Some(last), Some(&size)) = (v.last_mut(), sizes.get(s)) {
            last.end = size;
        }
    }
    out
}

/// `readelf -SW`: section name → size.
pub fn section_sizes(obj: &Path) -> BTreeMap<String, u64> {
    sections(obj).into_iter().map(|s| (s.name, s.size)).collect()
}

#[derive(Clone, Debug)]
pub struct SectionHdr {
    pub index: usize,
    pub name: String,
    pub sh_type: String,
    pub addr: u64,
    pub offset: u64,
    pub size: u64,
    pub flags: String,
}

/// `readelf -SW`.
pub fn sections(obj: &Path) -> Vec<SectionHdr> {
    let text = stdout(Command::new("readelf").args(["-SW"]).arg(obj));
    let mut v = Vec::new();
    for line in text.lines() {
        let Some(open) = line.find('[') else { continue };
        let Some(close) = line.find(']') else { continue };
        let Ok(index) = line[open + 1..close].trim().parse::<usize>() else { continue };
        let f: Vec<&str> = line[close + 1..].split_whitespace().collect();
        if f.len() < 6 || index == 0 {
            continue;
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).unwrap_or(0);
        // Name Type Address Off Size ES Flg Lk Inf Al (Flg may be missing)
        let flags = if f.len() >= 10 { f[6].to_owned() } else { String::new() };
        v.push(SectionHdr { index, name: f[0].to_owned(), sh_type: f[1].to_owned(), addr: hex(f[2]), offset: hex(f[3]), size: hex(f[4]), flags });
    }
    v
}

/// A relocation as `readelf -rW` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rel {
    pub offset: u64,
    pub ty: String,
    pub sym: String,
    pub addend: i64,
}

/// `readelf -rW`: relocation section name (`.rela.text`) → relocations.
pub fn relocations(obj: &Path) -> BTreeMap<String, Vec<Rel>> {
    let text = stdout(Command::new("readelf").args(["-rW"]).arg(obj));
    let mut out: BTreeMap<String, Vec<Rel>> = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Relocation section '") {
            cur = rest.split('\'').next().unwrap().to_owned();
            out.entry(cur.clone()).or_default();
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || !f[2].starts_with("R_X86_64") {
            continue;
        }
        let Ok(offset) = u64::from_str_radix(f[0], 16) else { continue };
        let (sym, addend) = if f.len() >= 7 {
            let a = i64::from_str_radix(f[6], 16).unwrap();
            (f[4].to_owned(), if f[5] == "-" { -a } else { a })
        } else if f.len() >= 4 {
            (String::new(), i64::from_str_radix(f[3], 16).unwrap_or(0))
        } else {
            (String::new(), 0)
        };
        out.entry(cur.clone()).or_default().push(Rel { offset, ty: f[2].to_owned(), sym, addend });
    }
    out
}

/// Contents of a section (`objcopy --dump-section`).
pub fn section_bytes(obj: &Path, name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sec.bin");
    let copy = dir.path().join("copy.o");
    run(Command::new("objcopy").arg(format!("--dump-section={name}={}", out.display())).arg(obj).arg(&copy));
    std::fs::read(&out).unwrap()
}

/// A site as the `.afterburn` section of a relocatable object says: section name, offset,
/// record.
#[derive(Clone, Debug)]
pub struct SiteAt {
    pub section: String,
    pub offset: u64,
    pub record: SiteRecord,
}

/// Reads `.afterburn` of a relocatable object with objcopy + readelf.
pub fn afterburn_sites(obj: &Path) -> Vec<SiteAt> {
    let bytes = section_bytes(obj, ".afterburn");
    let rels = relocations(obj).remove(".rela.afterburn").unwrap_or_default();
    let by_off: BTreeMap<u64, &Rel> = rels.iter().map(|r| (r.offset, r)).collect();
    let mut v = Vec::new();
    for s in Sites::new(&bytes) {
        let (off, rec) = s.expect("valid .afterburn records");
        let r = by_off.get(&(off as u64)).unwrap_or_else(|| panic!("record at {off:#x} has no relocation"));
        assert_eq!(r.ty, "R_X86_64_PC32");
        v.push(SiteAt { section: r.sym.clone(), offset: r.addend as u64, record: rec });
    }
    v
}

/// `readelf -sW`: (name, type, bind, section index or UND/ABS, value, size), in table order.
pub fn symbols(obj: &Path) -> Vec<(String, String, String, String, u64, u64)> {
    let text = stdout(Command::new("readelf").args(["-sW"]).arg(obj));
    let mut v = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 || !f[0].ends_with(':') || f[0] == "Num:" || f[0] == "0:" {
            continue;
        }
        let name = f.get(7).copied().unwrap_or("").to_owned();
        let value = u64::from_str_radix(f[1], 16).unwrap_or(0);
        let size = if let Some(h) = f[2].strip_prefix("0x") { u64::from_str_radix(h, 16).unwrap_or(0) } else { f[2].parse().unwrap_or(0) };
        v.push((name, f[3].to_owned(), f[4].to_owned(), f[6].to_owned(), value, size));
    }
    v
}

/// How the comparison treats NOPs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nops {
    /// Drop only burnt NOPs inside annotated site padding; everything else must match.
    InSitesOnly,
    /// Drop every NOP on both sides (objects whose special sections add NOP runs).
    All,
}

/// Index of the kept instruction at or after `offset` (`len` at the end).
fn index_of(insns: &[Insn], kept: &[usize], offset: u64) -> Option<usize> {
    let i = insns.partition_point(|x| x.offset < offset);
    if i == insns.len() {
        return if insns.last().map_or(offset == 0, |l| offset == l.end) { Some(kept.len()) } else { None };
    }
    if insns[i].offset != offset {
        return None;
    }
    // first kept instruction at or after i
    let k = kept.partition_point(|&j| j < i);
    Some(k)
}

/// Checks that `burnt` has the same instruction stream as `orig` in every code section,
/// branch and relocation targets compared by target instruction, and that every symbol in
/// code names the same instruction range. Returns the number of instructions compared.
pub fn compare_code(orig: &Path, burnt: &Path, nops: Nops) -> usize {
    let a = disasm(orig);
    let b = disasm(burnt);
    let sites = afterburn_sites(burnt);
    let code_sections: Vec<String> = a.keys().cloned().collect();
    let mut compared = 0;
    let pads_of = |sec: &str| -> Vec<(u64, u64)> {
        sites
            .iter()
            .filter(|s| s.section == sec)
            .map(|s| (s.offset + u64::from(s.record.insn_len), s.offset + u64::from(s.record.site_len)))
            .collect()
    };
    let mut kept_a: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut kept_b: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for sec in &code_sections {
        let ia = &a[sec];
        let ib = b.get(sec).unwrap_or_else(|| panic!("burnt object lost section {sec}"));
        let pads = pads_of(sec);
        kept_a.insert(sec.clone(), (0..ia.len()).filter(|&i| !(nops == Nops::All && ia[i].nop)).collect());
        kept_b.insert(
            sec.clone(),
            (0..ib.len())
                .filter(|&i| {
                    let x = &ib[i];
                    let in_pad = pads.iter().any(|&(s, e)| x.offset >= s && x.offset < e);
                    if in_pad {
                        assert!(x.nop, "{sec}+{:#x}: non-NOP `{}` inside site padding", x.offset, x.text);
                    }
                    !(in_pad || (nops == Nops::All && x.nop))
                })
                .collect(),
        );
    }
    for sec in &code_sections {
        let (ia, ib) = (&a[sec], &b[sec]);
        let (ka, kb) = (&kept_a[sec], &kept_b[sec]);
        assert_eq!(ka.len(), kb.len(), "{sec}: {} instructions before burning, {} after dropping padding", ka.len(), kb.len());
        for (&i, &j) in ka.iter().zip(kb) {
            let (x, y) = (&ia[i], &ib[j]);
            let place = format!("{sec}: original +{:#x} `{}` vs burnt +{:#x} `{}`", x.offset, x.text, y.offset, y.text);
            if !(x.nop && y.nop) {
                assert_eq!(x.text, y.text, "{place}");
            }
            match (x.target, y.target) {
                (Some(ta), Some(tb)) if x.relocs.is_empty() => {
                    let (pa, pb) = (index_of(ia, ka, ta), index_of(ib, kb, tb));
                    assert!(pa.is_some(), "{place}: original target {ta:#x} is not an instruction");
                    assert_eq!(pa, pb, "{place}: targets {ta:#x} / {tb:#x} are different instructions");
                }
                (None, None) => {}
                _ if !x.relocs.is_empty() => {}
                other => panic!("{place}: targets differ: {other:?}"),
            }
            assert_eq!(x.relocs.len(), y.relocs.len(), "{place}: relocations differ");
            for (ra, rb) in x.relocs.iter().zip(&y.relocs) {
                assert_eq!(ra.0 - x.offset, rb.0 - y.offset, "{place}: relocation moved inside the instruction");
                assert_eq!((&ra.1, &ra.2), (&rb.1, &rb.2), "{place}: relocation type/symbol");
                if a.contains_key(&ra.2) && b.contains_key(&rb.2) {
                    // against a code section symbol: compare the target instruction
                    let pc = ra.1.contains("PC") || ra.1.contains("PLT");
                    let ta = ra.3 + if pc { (x.end - ra.0) as i64 } else { 0 };
                    let tb = rb.3 + if pc { (y.end - rb.0) as i64 } else { 0 };
                    let pa = index_of(&a[&ra.2], &kept_a[&ra.2], ta as u64);
                    let pb = index_of(&b[&rb.2], &kept_b[&rb.2], tb as u64);
                    assert!(pa.is_some(), "{place}: relocation target {}{:+#x} is not an instruction", ra.2, ta);
                    assert_eq!(pa, pb, "{place}: relocation target {}{:+#x} vs {}{:+#x}", ra.2, ta, rb.2, tb);
                } else {
                    assert_eq!(ra.3, rb.3, "{place}: addend against {}", ra.2);
                }
            }
            compared += 1;
        }
    }
    // Symbols in code sections name the same instructions.
    let sa = symbols(orig);
    let sb = symbols(burnt);
    let secs_a = sections(orig);
    let secs_b = sections(burnt);
    let name_of = |secs: &[SectionHdr], ndx: &str| -> Option<String> {
        let i: usize = ndx.parse().ok()?;
        secs.iter().find(|s| s.index == i).map(|s| s.name.clone())
    };
    let pick = |v: &[(String, String, String, String, u64, u64)]| -> Vec<(String, String, String, String, u64, u64)> {
        v.iter().filter(|s| s.1 != "SECTION" && s.1 != "FILE").cloned().collect()
    };
    let (pa, pb) = (pick(&sa), pick(&sb));
    assert_eq!(pa.len(), pb.len(), "symbol count changed");
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!((&x.0, &x.1, &x.2), (&y.0, &y.1, &y.2), "symbol order changed");
        let (Some(na), Some(nb)) = (name_of(&secs_a, &x.3), name_of(&secs_b, &y.3)) else { continue };
        assert_eq!(na, nb, "symbol {} moved to another section", x.0);
        let (Some(ia), Some(ib)) = (a.get(&na), b.get(&nb)) else { continue };
        let (ka, kb) = (&kept_a[&na], &kept_b[&nb]);
        let (va, vb) = (index_of(ia, ka, x.4), index_of(ib, kb, y.4));
        if va.is_some() {
            assert_eq!(va, vb, "symbol {} starts at a different instruction", x.0);
            if x.5 > 0 {
                let (ea, eb) = (index_of(ia, ka, x.4 + x.5), index_of(ib, kb, y.4 + y.5));
                assert_eq!(ea, eb, "symbol {} ends at a different instruction", x.0);
            }
        }
    }
    compared
}

/// `objdump -d` of one section with raw bytes: (offset, bytes, text).
pub fn raw_insns(obj: &Path, section: &str) -> Vec<(u64, Vec<u8>, String)> {
    let text = stdout(Command::new("objdump").args(["-d", "-z", "--section", section]).arg(obj));
    let mut v: Vec<(u64, Vec<u8>, String)> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(a), Some(bytes)) = (parts.next(), parts.next()) else { continue };
        let Some(a) = a.trim().strip_suffix(':') else { continue };
        let Ok(off) = u64::from_str_radix(a, 16) else { continue };
        let bs: Vec<u8> = bytes.split_whitespace().filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
        match parts.next() {
            Some(t) => v.push((off, bs, t.split_whitespace().collect::<Vec<_>>().join(" "))),
            None => {
                if let Some(last) = v.last_mut() {
                    last.1.extend(bs);
                }
            }
        }
    }
    v
}

/// The afterburner binary's exit code and stderr for `args`.
pub fn afterburner_fails(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = afterburner().args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}
