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
        Work {
            dir: tempfile::tempdir().expect("temp dir"),
        }
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
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (gcc and binutils are required)"));
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
    let text = stdout(
        Command::new("objdump")
            .args(["-dr", "--no-show-raw-insn", "-z"])
            .arg(obj),
    );
    let mut out: BTreeMap<String, Vec<Insn>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Disassembly of section ") {
            section = rest.trim_end_matches(':').to_owned();
            out.entry(section.clone()).or_default();
            continue;
        }
        let t = line.trim_start();
        let Some((addr, rest)) = t.split_once(':') else {
            continue;
        };
        let Ok(offset) = u64::from_str_radix(addr, 16) else {
            continue;
        };
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
        insns.push(Insn {
            offset,
            end: offset,
            text,
            target,
            relocs: Vec::new(),
            nop,
        });
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
        let Ok(index) = line[open + 1..close].trim().parse::<usize>() else {
            continue;
        };
        let f: Vec<&str> = line[close + 1..].split_whitespace().collect();
        if f.len() < 6 || index == 0 {
            continue;
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).unwrap_or(0);
        // Name Type Address Off Size ES Flg Lk Inf Al (Flg may be missing)
        let flags = if f.len() >= 10 { f[6].to_owned() } else { String::new() };
        v.push(SectionHdr {
            index,
            name: f[0].to_owned(),
            sh_type: f[1].to_owned(),
            addr: hex(f[2]),
            offset: hex(f[3]),
            size: hex(f[4]),
            flags,
        });
    }
    v
}

/// A relocation as `readelf -rW` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rel {
    pub offset: u64,
    pub ty: String,
    pub sym: String,
    /// The symbol's value.
    pub value: u64,
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
        let Ok(offset) = u64::from_str_radix(f[0], 16) else {
            continue;
        };
        let (sym, value, addend) = if f.len() >= 7 {
            let a = i64::from_str_radix(f[6], 16).unwrap();
            (
                f[4].to_owned(),
                u64::from_str_radix(f[3], 16).unwrap_or(0),
                if f[5] == "-" { -a } else { a },
            )
        } else if f.len() >= 4 {
            (String::new(), 0, i64::from_str_radix(f[3], 16).unwrap_or(0))
        } else {
            (String::new(), 0, 0)
        };
        out.entry(cur.clone()).or_default().push(Rel {
            offset,
            ty: f[2].to_owned(),
            sym,
            value,
            addend,
        });
    }
    out
}

/// Contents of a section (`objcopy --dump-section`).
pub fn section_bytes(obj: &Path, name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sec.bin");
    let copy = dir.path().join("copy.o");
    run(Command::new("objcopy")
        .arg(format!("--dump-section={name}={}", out.display()))
        .arg(obj)
        .arg(&copy));
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
        let r = by_off
            .get(&(off as u64))
            .unwrap_or_else(|| panic!("record at {off:#x} has no relocation"));
        assert_eq!(r.ty, "R_X86_64_PC32");
        v.push(SiteAt {
            section: r.sym.clone(),
            offset: r.addend as u64,
            record: rec,
        });
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
        let size = if let Some(h) = f[2].strip_prefix("0x") {
            u64::from_str_radix(h, 16).unwrap_or(0)
        } else {
            f[2].parse().unwrap_or(0)
        };
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

/// What [`compare_code`] compared.
#[derive(Debug, Default)]
pub struct Compared {
    /// Instructions compared.
    pub instructions: usize,
    /// Functions skipped because objdump cannot decode them (`(bad)`: instructions newer
    /// than this binutils, such as LKGS), as `section+offset`.
    pub skipped: Vec<String>,
}

/// The instructions of one code section, split at symbol starts (objdump restarts decoding at
/// each symbol, so an instruction it does not know spoils one function only).
struct Split<'a> {
    insns: &'a [Insn],
    /// kept instruction indices per group
    groups: Vec<Vec<usize>>,
    /// start offset of each group
    starts: Vec<u64>,
    bad: Vec<bool>,
}

impl Split<'_> {
    /// (group, index among the group's kept instructions) of the instruction at or after
    /// `offset`, which must start an instruction (or be the section end).
    fn pos(&self, offset: u64) -> Option<(usize, usize)> {
        let g = self.starts.partition_point(|&s| s <= offset).checked_sub(1)?;
        let i = self.insns.partition_point(|x| x.offset < offset);
        if i == self.insns.len() {
            let end = self.insns.last().map_or(0, |l| l.end);
            return (offset == end).then(|| (g, self.groups[g].len()));
        }
        if self.insns[i].offset != offset {
            return if self.bad[g] { Some((g, usize::MAX)) } else { None };
        }
        if self.bad[g] {
            return Some((g, usize::MAX));
        }
        let k = self.groups[g].partition_point(|&j| j < i);
        Some((g, k))
    }
}

fn split<'a>(insns: &'a [Insn], bounds: &[u64], keep: impl Fn(usize) -> bool) -> Split<'a> {
    let mut starts: Vec<u64> = vec![0];
    starts.extend(bounds.iter().copied().filter(|&b| b > 0));
    starts.sort_unstable();
    starts.dedup();
    let mut groups = vec![Vec::new(); starts.len()];
    let mut bad = vec![false; starts.len()];
    for (i, x) in insns.iter().enumerate() {
        let g = starts.partition_point(|&s| s <= x.offset) - 1;
        if x.text.contains("(bad)") || x.text.starts_with(".byte") {
            bad[g] = true;
        }
        if keep(i) {
            groups[g].push(i);
        }
    }
    Split {
        insns,
        groups,
        starts,
        bad,
    }
}

/// Checks that `burnt` has the same instruction stream as `orig` in every code section,
/// function by function, with branch and relocation targets naming the same instructions,
/// and that every symbol in code names the same instruction range.
pub fn compare_code(orig: &Path, burnt: &Path, nops: Nops) -> Compared {
    let a = disasm(orig);
    let b = disasm(burnt);
    let sites = afterburn_sites(burnt);
    let (sa, sb) = (symbols(orig), symbols(burnt));
    let (secs_a, secs_b) = (sections(orig), sections(burnt));
    let name_of = |secs: &[SectionHdr], ndx: &str| -> Option<String> {
        let i: usize = ndx.parse().ok()?;
        secs.iter().find(|s| s.index == i).map(|s| s.name.clone())
    };
    let pick = |v: &[(String, String, String, String, u64, u64)]| -> Vec<(String, String, String, String, u64, u64)> {
        v.iter()
            .filter(|s| s.1 != "SECTION" && s.1 != "FILE")
            .cloned()
            .collect()
    };
    let (pa, pb) = (pick(&sa), pick(&sb));
    assert_eq!(pa.len(), pb.len(), "symbol count changed");
    let bounds = |syms: &[(String, String, String, String, u64, u64)], secs: &[SectionHdr], sec: &str| -> Vec<u64> {
        syms.iter()
            .filter(|s| name_of(secs, &s.3).as_deref() == Some(sec))
            .map(|s| s.4)
            .collect()
    };
    let mut out = Compared::default();
    let mut split_a = BTreeMap::new();
    let mut split_b = BTreeMap::new();
    for (sec, ia) in &a {
        let ib = b.get(sec).unwrap_or_else(|| panic!("burnt object lost section {sec}"));
        let pads: Vec<(u64, u64)> = sites
            .iter()
            .filter(|s| &s.section == sec)
            .map(|s| {
                (
                    s.offset + u64::from(s.record.insn_len),
                    s.offset + u64::from(s.record.site_len),
                )
            })
            .collect();
        let xa = split(ia, &bounds(&pa, &secs_a, sec), |i| !(nops == Nops::All && ia[i].nop));
        let xb = split(ib, &bounds(&pb, &secs_b, sec), |i| {
            let x = &ib[i];
            let in_pad = pads.iter().any(|&(s, e)| x.offset >= s && x.offset < e);
            !(in_pad || (nops == Nops::All && x.nop))
        });
        assert_eq!(xa.groups.len(), xb.groups.len(), "{sec}: symbol starts differ");
        split_a.insert(sec.clone(), xa);
        split_b.insert(sec.clone(), xb);
    }
    for sec in a.keys() {
        let (xa, xb) = (&split_a[sec], &split_b[sec]);
        for g in 0..xa.groups.len() {
            if xa.bad[g] || xb.bad[g] {
                out.skipped.push(format!("{sec}+{:#x}", xa.starts[g]));
                continue;
            }
            let (ga, gb) = (&xa.groups[g], &xb.groups[g]);
            assert_eq!(
                ga.len(),
                gb.len(),
                "{sec}+{:#x}: {} instructions before burning, {} after dropping padding",
                xa.starts[g],
                ga.len(),
                gb.len()
            );
            for (&i, &j) in ga.iter().zip(gb) {
                let (x, y) = (&xa.insns[i], &xb.insns[j]);
                let place = format!(
                    "{sec}: original +{:#x} `{}` vs burnt +{:#x} `{}`",
                    x.offset, x.text, y.offset, y.text
                );
                if !(x.nop && y.nop) {
                    assert_eq!(x.text, y.text, "{place}");
                }
                match (x.target, y.target) {
                    (Some(ta), Some(tb)) if x.relocs.is_empty() => {
                        let (qa, qb) = (xa.pos(ta), xb.pos(tb));
                        assert!(qa.is_some(), "{place}: original target {ta:#x} is not an instruction");
                        assert_eq!(qa, qb, "{place}: targets {ta:#x} / {tb:#x} are different instructions");
                    }
                    (None, None) => {}
                    _ if !x.relocs.is_empty() => {}
                    other => panic!("{place}: targets differ: {other:?}"),
                }
                assert_eq!(x.relocs.len(), y.relocs.len(), "{place}: relocations differ");
                for (ra, rb) in x.relocs.iter().zip(&y.relocs) {
                    assert_eq!(
                        ra.0 - x.offset,
                        rb.0 - y.offset,
                        "{place}: relocation moved inside the instruction"
                    );
                    assert_eq!((&ra.1, &ra.2), (&rb.1, &rb.2), "{place}: relocation type/symbol");
                    if let (Some(ta_split), Some(tb_split)) = (split_a.get(&ra.2), split_b.get(&rb.2)) {
                        // against a code section symbol: compare the target instruction
                        let pc = ra.1.contains("PC") || ra.1.contains("PLT");
                        let ta = ra.3 + if pc { (x.end - ra.0) as i64 } else { 0 };
                        let tb = rb.3 + if pc { (y.end - rb.0) as i64 } else { 0 };
                        let (qa, qb) = (ta_split.pos(ta as u64), tb_split.pos(tb as u64));
                        assert!(
                            qa.is_some(),
                            "{place}: relocation target {}{:+#x} is not an instruction",
                            ra.2,
                            ta
                        );
                        assert_eq!(
                            qa, qb,
                            "{place}: relocation target {}{:+#x} vs {}{:+#x}",
                            ra.2, ta, rb.2, tb
                        );
                    } else {
                        assert_eq!(ra.3, rb.3, "{place}: addend against {}", ra.2);
                    }
                }
                out.instructions += 1;
            }
        }
        // burnt padding holds NOPs only (where objdump can decode)
        for s in sites.iter().filter(|s| &s.section == sec) {
            let (lo, hi) = (
                s.offset + u64::from(s.record.insn_len),
                s.offset + u64::from(s.record.site_len),
            );
            let g = xb.starts.partition_point(|&st| st <= s.offset) - 1;
            if xb.bad[g] {
                continue;
            }
            for x in b[sec].iter().filter(|x| x.offset >= lo && x.offset < hi) {
                assert!(x.nop, "{sec}+{:#x}: non-NOP `{}` inside site padding", x.offset, x.text);
            }
        }
    }
    // Relocations in data sections that point into code name the same instructions
    // (PC-relative ones in .rodata are left out: PIC jump tables hold `case - table`, whose
    // target GNU readelf cannot tell; running the programs checks those).
    let (ra_all, rb_all) = (relocations(orig), relocations(burnt));
    let sym_section =
        |syms: &[(String, String, String, String, u64, u64)], secs: &[SectionHdr], name: &str| -> Option<String> {
            if split_a.contains_key(name) {
                return Some(name.to_owned());
            }
            let s = syms.iter().find(|s| s.0 == name)?;
            name_of(secs, &s.3)
        };
    for (rsec, la) in &ra_all {
        let target_sec = rsec.strip_prefix(".rela").unwrap_or(rsec);
        if a.contains_key(target_sec) || rsec == ".rela.afterburn" {
            continue; // code: compared above
        }
        if target_sec.starts_with(".debug_") || target_sec == ".eh_frame" {
            continue; // DWARF/CFI: rewritten by crate::dwarf, checked by its own tests
        }
        let lb = rb_all.get(rsec).unwrap_or_else(|| panic!("burnt object lost {rsec}"));
        assert_eq!(la.len(), lb.len(), "{rsec}: relocation count");
        for (x, y) in la.iter().zip(lb) {
            assert_eq!(
                (x.offset, &x.ty, &x.sym),
                (y.offset, &y.ty, &y.sym),
                "{rsec}: relocation changed"
            );
            let pc = x.ty.contains("PC");
            if pc && target_sec.starts_with(".rodata") {
                continue;
            }
            let Some(ts) = sym_section(&sa, &secs_a, &x.sym) else {
                continue;
            };
            let (Some(xa), Some(xb)) = (split_a.get(&ts), split_b.get(&ts)) else {
                continue;
            };
            let ta = (x.value as i64 + x.addend) as u64;
            let tb = (y.value as i64 + y.addend) as u64;
            let (qa, qb) = (xa.pos(ta), xb.pos(tb));
            if qa.is_none() {
                continue; // points inside an instruction or past it: no instruction to compare
            }
            // an entry right after a site may map to the end of the original instruction
            // (ORC): that is the first padding NOP, which is dropped like the site's padding
            assert_eq!(
                qa, qb,
                "{rsec}+{:#x}: {} {}{:+#x} vs {}{:+#x}",
                x.offset, x.ty, x.sym, x.addend, y.sym, y.addend
            );
        }
    }
    // Symbols in code sections name the same instructions.
    for (x, y) in pa.iter().zip(&pb) {
        assert_eq!((&x.0, &x.1, &x.2), (&y.0, &y.1, &y.2), "symbol order changed");
        let (Some(na), Some(nb)) = (name_of(&secs_a, &x.3), name_of(&secs_b, &y.3)) else {
            continue;
        };
        assert_eq!(na, nb, "symbol {} moved to another section", x.0);
        let (Some(xa), Some(xb)) = (split_a.get(&na), split_b.get(&nb)) else {
            continue;
        };
        let (va, vb) = (xa.pos(x.4), xb.pos(y.4));
        if va.is_some() {
            assert_eq!(va, vb, "symbol {} starts at a different instruction", x.0);
            if x.5 > 0 {
                let (ea, eb) = (xa.pos(x.4 + x.5), xb.pos(y.4 + y.5));
                assert_eq!(ea, eb, "symbol {} ends at a different instruction", x.0);
            }
        }
    }
    out
}

/// `objdump -d` of one section with raw bytes: (offset, bytes, text).
pub fn raw_insns(obj: &Path, section: &str) -> Vec<(u64, Vec<u8>, String)> {
    let text = stdout(
        Command::new("objdump")
            .args(["-d", "-z", "--section", section])
            .arg(obj),
    );
    let mut v: Vec<(u64, Vec<u8>, String)> = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(a), Some(bytes)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(a) = a.trim().strip_suffix(':') else { continue };
        let Ok(off) = u64::from_str_radix(a, 16) else { continue };
        let bs: Vec<u8> = bytes
            .split_whitespace()
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .collect();
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
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
