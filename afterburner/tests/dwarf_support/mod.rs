//! Shared harness for the DWARF rewrite tests (`tests/dwarf_*.rs`).
//!
//! Two oracles, neither of which is the code under test:
//!
//! * **gas**: a C file is compiled to assembly; every instruction line gets a label, and a
//!   padded copy of the assembly gets `.skip N, 0x90` (N one-byte NOPs) right after chosen instruction lines (alignment
//!   directives in code are frozen to the bytes they produced, as a burn engine would leave
//!   them). GNU `as` assembles both. Label positions give the offset maps (including gas's own
//!   branch widening); the padded object's DWARF and CFI, computed by `as` from labels, are the
//!   ground truth that `dwarf::rewrite(original, maps)` must reproduce.
//! * **mapped original**: the original object's DWARF, decoded by gimli with relocations
//!   applied, with every code location sent through the maps, must equal the rewritten object's
//!   DWARF decoded the same way (works for any object, e.g. Linux's).
//!
//! Decoding uses gimli over "linked" copies of the sections: each allocated section gets a
//! synthetic address `index << 20`, and relocations are applied as a linker would, so a code
//! location decodes back to (section index, offset).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use afterburner::dwarf::{self, RewrittenSection};
use afterburner::offset_map::OffsetMap;
use gimli::{EndianSlice, LittleEndian, UnwindSection};
use object::{Object, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget, SymbolKind};

pub type Maps = BTreeMap<usize, OffsetMap>;

/// Runs a command, panicking with its stderr when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a tool is on PATH.
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A small deterministic PRNG (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dwarf_src")
}

// ---------------------------------------------------------------------------------------------
// Assembly with labels
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Insn,
    Align,
    Other,
}

fn line_kind(line: &str) -> LineKind {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
        return LineKind::Other;
    }
    if t.starts_with('.') {
        if t.starts_with(".p2align") || t.starts_with(".align") || t.starts_with(".balign") {
            return LineKind::Align;
        }
        return LineKind::Other;
    }
    if t.ends_with(':') && !t.contains([' ', '\t']) {
        return LineKind::Other;
    }
    LineKind::Insn
}

/// Assembly text in which every instruction and alignment line has a label `__ab_<id>` before
/// it (id = line number).
pub struct Asm {
    pub lines: Vec<(String, LineKind)>,
}

impl Asm {
    pub fn parse(text: &str) -> Self {
        Asm {
            lines: text
                .lines()
                .map(|l| (l.to_string(), line_kind(l)))
                .collect(),
        }
    }

    /// The labelled text; `pads`: instruction line id → NOP bytes after it; `frozen`: alignment
    /// line id → the bytes it produced originally. Labels and padding go on the instruction's
    /// own line (`;` separates statements), so line numbers of the assembly do not change.
    pub fn render(&self, pads: &BTreeMap<usize, u64>, frozen: &BTreeMap<usize, Vec<u8>>) -> String {
        let mut s = String::new();
        for (id, (line, kind)) in self.lines.iter().enumerate() {
            match kind {
                LineKind::Insn => {
                    let _ = write!(s, "__ab_{id}: {}", line.trim_start());
                    if let Some(n) = pads.get(&id) {
                        let _ = write!(s, " ; .skip {n}, 0x90");
                    }
                    s.push('\n');
                }
                LineKind::Align => match frozen.get(&id) {
                    Some(bytes) if bytes.is_empty() => {
                        let _ = writeln!(s, "__ab_{id}:");
                    }
                    Some(bytes) => {
                        let list: Vec<String> = bytes.iter().map(|b| format!("{b:#x}")).collect();
                        let _ = writeln!(s, "__ab_{id}: .byte {}", list.join(","));
                    }
                    None => {
                        let _ = writeln!(s, "__ab_{id}: {}", line.trim_start());
                    }
                },
                LineKind::Other => {
                    let _ = writeln!(s, "{line}");
                }
            }
        }
        s
    }
}

/// Label id → (section index, offset).
pub fn labels(obj: &[u8]) -> BTreeMap<usize, (usize, u64)> {
    let file = object::File::parse(obj).unwrap();
    let mut m = BTreeMap::new();
    for s in file.symbols() {
        if let Some(id) = s.name().ok().and_then(|n| n.strip_prefix("__ab_")) {
            if let (Ok(id), Some(sec)) = (id.parse::<usize>(), s.section_index()) {
                m.insert(id, (sec.0, s.address()));
            }
        }
    }
    m
}

/// Executable sections: index → size.
pub fn code_sections(obj: &[u8]) -> BTreeMap<usize, u64> {
    let file = object::File::parse(obj).unwrap();
    file.sections()
        .filter(|s| {
            matches!(s.flags(), object::SectionFlags::Elf { sh_flags, .. }
                if sh_flags.0 & object::elf::SHF_EXECINSTR.0 != 0)
        })
        .map(|s| (s.index().0, s.size()))
        .collect()
}

/// An original/padded pair assembled by GNU `as` from one C file.
pub struct GasPair {
    pub dir: tempfile::TempDir,
    pub orig: Vec<u8>,
    pub padded: Vec<u8>,
    pub maps: Maps,
    /// Instruction starts of the original object: section → offsets.
    pub insn_offsets: BTreeMap<usize, Vec<u64>>,
    pub sites: usize,
    pub pads: usize,
}

/// How to choose insertion points.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub seed: u64,
    /// One instruction in `every` gets random padding (0: none).
    pub every: u64,
    /// Padding sizes to draw from.
    pub sizes: &'static [u64],
    /// Padding after each instruction `sensitive::classify` flags.
    pub site_pad: u64,
}

pub const DEFAULT_SIZES: &[u64] = &[1, 2, 3, 5, 8, 16, 40, 100, 130, 300];

/// Labels a source, and assembles original and padded objects with GNU `as`: a C file
/// (compiled to assembly by gcc with `flags`) or an assembly file (`.s`, assembled with `as`
/// `flags`, e.g. `--gdwarf-5`, so `as` writes its DWARF).
pub fn gas_pair(src: &Path, flags: &[&str], policy: Policy) -> GasPair {
    let dir = tempfile::tempdir().unwrap();
    let is_asm = src.extension().is_some_and(|e| e == "s");
    let text = if is_asm {
        std::fs::read_to_string(src).unwrap()
    } else {
        let s = dir.path().join("in.s");
        let mut gcc = Command::new("gcc");
        gcc.args(flags).arg("-S").arg("-o").arg(&s).arg(src);
        // Stable file names in the DWARF: compile from the source directory.
        gcc.current_dir(src.parent().unwrap());
        run(&mut gcc);
        std::fs::read_to_string(&s).unwrap()
    };
    let asm = Asm::parse(&text);
    let as_flags: &[&str] = if is_asm { flags } else { &[] };

    // Both versions are assembled as `in.s` in directories of equal name length, with the
    // directory mapped away, so names and strings in the DWARF are the same.
    let assemble = |name: &str, text: &str| -> Vec<u8> {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("in.s"), text).unwrap();
        std::fs::write(dir.path().join(format!("{name}.s")), text).unwrap();
        run(Command::new("as")
            .arg("--64")
            .arg(format!("--debug-prefix-map={}=/src", d.display()))
            .args(as_flags)
            .args(["-o", "in.o", "in.s"])
            .current_dir(&d));
        let obj = std::fs::read(d.join("in.o")).unwrap();
        std::fs::write(dir.path().join(format!("{name}.o")), &obj).unwrap();
        obj
    };
    let orig = assemble("orig", &asm.render(&BTreeMap::new(), &BTreeMap::new()));
    let lab = labels(&orig);
    let code = code_sections(&orig);
    let file = object::File::parse(&*orig).unwrap();

    // Original bytes of each alignment directive in code (to freeze it) and instruction starts.
    let mut by_sec: BTreeMap<usize, Vec<(u64, usize)>> = BTreeMap::new();
    for (&id, &(sec, off)) in &lab {
        if code.contains_key(&sec) {
            by_sec.entry(sec).or_default().push((off, id));
        }
    }
    let mut frozen = BTreeMap::new();
    let mut insn_offsets: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut pads = BTreeMap::new();
    let mut rng = Rng::new(policy.seed);
    let mut sites = 0;
    for (&sec, list) in &mut by_sec {
        list.sort();
        let data = file
            .section_by_index(object::SectionIndex(sec))
            .unwrap()
            .data()
            .unwrap();
        for (k, &(off, id)) in list.iter().enumerate() {
            let next = list.get(k + 1).map_or(code[&sec], |&(o, _)| o);
            match asm.lines[id].1 {
                LineKind::Align => {
                    frozen.insert(id, data[off as usize..next as usize].to_vec());
                }
                LineKind::Insn => {
                    insn_offsets.entry(sec).or_default().push(off);
                    let bytes = &data[off as usize..];
                    let mut dec =
                        iced_x86::Decoder::with_ip(64, bytes, off, iced_x86::DecoderOptions::NONE);
                    let insn = dec.decode();
                    let sensitive = afterburner::sensitive::classify(&insn).is_some();
                    // No padding right after a call: gcc writes the end of a call-clobbered
                    // location as `.LVLn-1` (the call's last byte), which `as` moves with the
                    // label past the padding, while the offset map (correctly: the register is
                    // dead once the call returns into the padding) does not. The burner never
                    // pads after a call (calls are neither sites nor widened branches).
                    // Sibling calls (`jmp f`) are call sites too; other jumps get no random
                    // padding either (the burner only grows them by widening).
                    let is_call = matches!(
                        insn.flow_control(),
                        iced_x86::FlowControl::Call
                            | iced_x86::FlowControl::IndirectCall
                            | iced_x86::FlowControl::UnconditionalBranch
                            | iced_x86::FlowControl::IndirectBranch
                    );
                    if is_call {
                        continue;
                    }
                    if sensitive && policy.site_pad > 0 {
                        sites += 1;
                        pads.insert(id, policy.site_pad);
                    } else if policy.every > 0 && rng.below(policy.every) == 0 {
                        let n = policy.sizes[rng.below(policy.sizes.len() as u64) as usize];
                        pads.insert(id, n);
                    }
                }
                LineKind::Other => unreachable!(),
            }
        }
    }
    let padded = assemble("padded", &asm.render(&pads, &frozen));
    let maps = maps_from_labels(&orig, &padded);
    let npads = pads.len();
    GasPair {
        dir,
        orig,
        padded,
        maps,
        insn_offsets,
        sites,
        pads: npads,
    }
}

/// Offset maps of the code sections from the positions of the same labels in two objects.
pub fn maps_from_labels(orig: &[u8], padded: &[u8]) -> Maps {
    let (lo, lp) = (labels(orig), labels(padded));
    let (co, cp) = (code_sections(orig), code_sections(padded));
    let mut points: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
    for (id, &(sec, off)) in &lo {
        if !co.contains_key(&sec) {
            continue;
        }
        let &(psec, poff) = lp.get(id).expect("label missing in padded object");
        assert_eq!(sec, psec, "label __ab_{id} changed section");
        points.entry(sec).or_default().push((off, poff));
    }
    let mut maps = Maps::new();
    for (&sec, &size) in &co {
        let mut pts = points.remove(&sec).unwrap_or_default();
        pts.push((size, cp[&sec]));
        pts.sort();
        pts.dedup();
        let mut m = OffsetMap::new();
        let mut prev = 0u64;
        for (o, n) in pts {
            let d = n.checked_sub(o).expect("padded offset before original");
            assert!(
                d >= prev,
                "section {sec}: offset map not monotone at {o:#x}"
            );
            m.insert(o, d - prev);
            prev = d;
        }
        for (o, n) in points.get(&sec).into_iter().flatten() {
            assert_eq!(m.map(*o), *n);
        }
        maps.insert(sec, m);
    }
    maps
}

// ---------------------------------------------------------------------------------------------
// Writing a burnt-like object (emulating the burn engine around dwarf::rewrite)
// ---------------------------------------------------------------------------------------------

/// Symbol values (by original index) and sections of `obj`.
fn symbol_table(obj: &[u8]) -> Vec<(Option<usize>, u64, bool)> {
    let file = object::File::parse(obj).unwrap();
    let mut v = Vec::new();
    for s in file.symbols() {
        let i = s.index().0;
        if v.len() <= i {
            v.resize(i + 1, (None, 0, false));
        }
        v[i] = (
            s.section_index().map(|x| x.0),
            s.address(),
            s.kind() == SymbolKind::Section,
        );
    }
    v
}

/// Relocations of section `index`: (offset, symbol, type, addend).
pub fn relocs_of(obj: &[u8], index: usize) -> Vec<(u64, u32, u32, i64)> {
    let file = object::File::parse(obj).unwrap();
    let sec = file.section_by_index(object::SectionIndex(index)).unwrap();
    let mut v: Vec<_> = sec
        .relocations()
        .map(|(off, r)| {
            let RelocationTarget::Symbol(s) = r.target() else {
                panic!("relocation without symbol")
            };
            let RelocationFlags::Elf { r_type } = r.flags() else {
                panic!()
            };
            (off, s.0 as u32, r_type.0, r.addend())
        })
        .collect();
    v.sort();
    v
}

/// ELF64 section header fields the writer needs.
#[derive(Clone, Copy, Debug)]
struct Shdr {
    sh_type: u32,
    offset: u64,
    size: u64,
    info: u32,
    align: u64,
}

fn rd_u16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn rd_u32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn rd_u64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

fn shdrs(obj: &[u8]) -> Vec<Shdr> {
    let shoff = rd_u64(obj, 0x28) as usize;
    let n = rd_u16(obj, 0x3c) as usize;
    assert_eq!(rd_u16(obj, 0x3a), 64);
    (0..n)
        .map(|i| {
            let h = shoff + i * 64;
            Shdr {
                sh_type: rd_u32(obj, h + 4),
                offset: rd_u64(obj, h + 24),
                size: rd_u64(obj, h + 32),
                info: rd_u32(obj, h + 44),
                align: rd_u64(obj, h + 48),
            }
        })
        .collect()
}

fn rela_bytes(list: &[(u64, u32, u32, i64)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(list.len() * 24);
    for &(o, s, t, a) in list {
        v.extend_from_slice(&o.to_le_bytes());
        v.extend_from_slice(&((u64::from(s) << 32) | u64::from(t)).to_le_bytes());
        v.extend_from_slice(&a.to_le_bytes());
    }
    v
}

/// Writes the burnt object (test stand-in for the burn engine; raw ELF64, so any section type,
/// including groups, survives).
///
/// `code_from`: `Some(padded)` takes code sections, their relocations and the symbol table from
/// an object that already holds the moved code (gas oracle); `None` pads the original's code with
/// NOPs at the insertion points and maps its code relocations and symbols. Debug and unwind
/// sections come from `orig`: replaced wholesale when `rewritten` has them, else with relocation
/// addends mapped by the engine's generic rule (`map_addend`), using the code maps and the
/// returned offset maps. In the `None` case the other sections' relocations are mapped too.
pub fn write_burnt(
    orig: &[u8],
    code_from: Option<&[u8]>,
    maps: &Maps,
    rewritten: &[RewrittenSection],
) -> Vec<u8> {
    let base = code_from.unwrap_or(orig);
    let (bh, oh) = (shdrs(base), shdrs(orig));
    assert_eq!(bh.len(), oh.len(), "section tables differ");
    let names = section_names(orig);
    let osyms = symbol_table(orig);
    let mut all_maps = maps.clone();
    for r in rewritten {
        if let Some(m) = &r.offset_map {
            all_maps.insert(r.index, m.clone());
        }
    }
    let rewritten: HashMap<usize, &RewrittenSection> =
        rewritten.iter().map(|r| (r.index, r)).collect();
    let generic = |sym: u32, r_type: u32, addend: i64| -> i64 {
        let (sec, value, _) = osyms[sym as usize];
        match sec.and_then(|s| all_maps.get(&s)) {
            Some(m) if !m.is_identity() && matches!(r_type, 1 | 2 | 4 | 10 | 11 | 24) => {
                m.map_addend(value, addend, 0).unwrap()
            }
            _ => addend,
        }
    };
    let is_debug = |i: usize| {
        let n = names.get(&i).map_or("", String::as_str);
        n.starts_with(".debug_") || n == ".eh_frame"
    };
    let raw = |obj: &[u8], h: &Shdr| -> Vec<u8> {
        if h.sh_type == 8 {
            Vec::new() // SHT_NOBITS
        } else {
            obj[h.offset as usize..(h.offset + h.size) as usize].to_vec()
        }
    };

    let mut contents: Vec<Vec<u8>> = Vec::with_capacity(bh.len());
    for (i, h) in bh.iter().enumerate() {
        let c = if h.sh_type == 4 {
            // SHT_RELA for section `info`.
            let t = h.info as usize;
            if let Some(r) = rewritten.get(&t) {
                let list: Vec<_> = r
                    .relocs
                    .iter()
                    .map(|r| (r.offset, r.symbol, r.r_type, r.addend))
                    .collect();
                rela_bytes(&list)
            } else if is_debug(t) {
                let list: Vec<_> = relocs_of(orig, t)
                    .into_iter()
                    .map(|(o, s, ty, a)| (o, s, ty, generic(s, ty, a)))
                    .collect();
                rela_bytes(&list)
            } else if code_from.is_none() {
                let m = maps.get(&t);
                let list: Vec<_> = relocs_of(orig, t)
                    .into_iter()
                    .map(|(o, s, ty, a)| (m.map_or(o, |m| m.map(o)), s, ty, generic(s, ty, a)))
                    .collect();
                rela_bytes(&list)
            } else {
                raw(base, h)
            }
        } else if let Some(r) = rewritten.get(&i) {
            r.data.clone()
        } else if is_debug(i) {
            raw(orig, &oh[i])
        } else if let (None, Some(m)) = (code_from, maps.get(&i)) {
            let mut data = raw(orig, &oh[i]);
            let mut ins: Vec<(u64, u64)> = m.insertions().collect();
            ins.reverse();
            for (at, n) in ins {
                let at = at as usize;
                data.splice(at..at, std::iter::repeat_n(0x90u8, n as usize));
            }
            data
        } else if h.sh_type == 2 && code_from.is_none() {
            // SHT_SYMTAB: symbols in moved sections move (section symbols stay at 0).
            let mut data = raw(orig, &oh[i]);
            for (k, &(sec, value, is_section)) in osyms.iter().enumerate() {
                let Some(m) = sec.and_then(|s| maps.get(&s)) else {
                    continue;
                };
                if is_section || k == 0 {
                    continue;
                }
                let e = k * 24;
                let size = rd_u64(&data, e + 16);
                data[e + 8..e + 16].copy_from_slice(&m.map(value).to_le_bytes());
                if size > 0 {
                    let new = m.map(value + size) - m.map(value);
                    data[e + 16..e + 24].copy_from_slice(&new.to_le_bytes());
                }
            }
            data
        } else {
            raw(base, h)
        };
        contents.push(c);
    }

    // Lay out: ELF header, section contents, section header table.
    let mut out = base[..64].to_vec();
    let mut placed = Vec::with_capacity(bh.len());
    for (i, h) in bh.iter().enumerate() {
        if i == 0 {
            placed.push((0u64, 0u64));
            continue;
        }
        let align = h.align.max(1) as usize;
        while !out.len().is_multiple_of(align) {
            out.push(0);
        }
        let size = if h.sh_type == 8 {
            h.size
        } else {
            contents[i].len() as u64
        };
        placed.push((out.len() as u64, size));
        out.extend_from_slice(&contents[i]);
    }
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    let old_shoff = rd_u64(base, 0x28) as usize;
    for (i, &(off, size)) in placed.iter().enumerate() {
        let mut h = base[old_shoff + i * 64..old_shoff + (i + 1) * 64].to_vec();
        if i > 0 {
            h[24..32].copy_from_slice(&off.to_le_bytes());
            h[32..40].copy_from_slice(&size.to_le_bytes());
        }
        out.extend_from_slice(&h);
    }
    out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// Decoding with gimli
// ---------------------------------------------------------------------------------------------

/// A code location: (section index, offset); section 0 = absolute.
pub type Loc = (usize, u64);

/// One decoded fact: a description plus the code locations in it.
pub type Fact = (String, Vec<Loc>);

/// Bits of the synthetic address that hold the offset (the rest is the section index).
fn sec_shift(obj: &[u8]) -> u32 {
    let file = object::File::parse(obj).unwrap();
    let max = file.sections().map(|s| s.size()).max().unwrap_or(0);
    (64 - max.leading_zeros()).max(20)
}

thread_local! {
    static SHIFT: std::cell::Cell<u32> = const { std::cell::Cell::new(20) };
}

fn loc(addr: u64) -> Loc {
    let shift = SHIFT.with(|s| s.get());
    ((addr >> shift) as usize, addr & ((1 << shift) - 1))
}

/// Section data with relocations applied as a linker would (allocated sections at
/// `index << shift`, others at 0; `shift` fits the largest section).
pub fn linked_sections(obj: &[u8]) -> HashMap<usize, (String, Vec<u8>, u64)> {
    let shift = sec_shift(obj);
    SHIFT.with(|s| s.set(shift));
    let file = object::File::parse(obj).unwrap();
    let syms = symbol_table(obj);
    let is_alloc: HashMap<usize, bool> = file
        .sections()
        .map(|s| {
            let alloc = matches!(s.flags(), object::SectionFlags::Elf { sh_flags, .. }
                if sh_flags.0 & object::elf::SHF_ALLOC.0 != 0);
            (s.index().0, alloc)
        })
        .collect();
    let base_of = |sec: usize| -> u64 {
        if is_alloc[&sec] {
            (sec as u64) << shift
        } else {
            0
        }
    };
    let mut out = HashMap::new();
    for s in file.sections() {
        let name = s.name().unwrap_or("").to_string();
        if !(name.starts_with(".debug_") || name == ".eh_frame") {
            continue;
        }
        let idx = s.index().0;
        let mut data = s.data().unwrap().to_vec();
        for (off, r) in s.relocations() {
            let RelocationTarget::Symbol(si) = r.target() else {
                continue;
            };
            let RelocationFlags::Elf { r_type } = r.flags() else {
                continue;
            };
            let (sec, value, _) = syms[si.0];
            let sv = sec.map_or(value, |sec| base_of(sec) + value);
            let v = (sv as i64).wrapping_add(r.addend());
            let p = base_of(idx) + off;
            let o = off as usize;
            match r_type.0 {
                1 | 17 => data[o..o + 8].copy_from_slice(&(v as u64).to_le_bytes()),
                24 => data[o..o + 8].copy_from_slice(&(v.wrapping_sub(p as i64)).to_le_bytes()),
                10 | 11 | 21 => data[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes()),
                2 => {
                    data[o..o + 4].copy_from_slice(&(v.wrapping_sub(p as i64) as i32).to_le_bytes())
                }
                t => panic!("{name}: relocation type {t} in a debug section"),
            }
        }
        out.insert(idx, (name, data, base_of(idx)));
    }
    out
}

type R<'a> = EndianSlice<'a, LittleEndian>;

fn ops(expr: gimli::Expression<R<'_>>, enc: gimli::Encoding, locs: &mut Vec<Loc>) -> String {
    let raw = expr.0;
    let mut it = expr.operations(enc);
    let mut s = String::new();
    loop {
        match it.next() {
            Ok(Some(gimli::Operation::Address { address })) => {
                locs.push(loc(address));
                s.push_str("addr(@);");
            }
            Ok(Some(op)) => {
                let _ = write!(s, "{op:?};");
            }
            Ok(None) => return s,
            Err(_) => return format!("raw{:?}", raw.slice()),
        }
    }
}

/// Every code-location-bearing fact in an object's DWARF and CFI.
pub fn dump(obj: &[u8]) -> Vec<Fact> {
    let secs = linked_sections(obj);
    let by_name = |n: &str| -> &[u8] {
        secs.values()
            .find(|(name, _, _)| name == n)
            .map(|(_, d, _)| d.as_slice())
            .unwrap_or(&[])
    };
    let mut facts = Vec::new();
    let dwarf = gimli::Dwarf::load(|id| -> gimli::Result<R<'_>> {
        Ok(EndianSlice::new(by_name(id.name()), LittleEndian))
    })
    .unwrap();

    // DIEs are named by (unit number, DFS index), not offset: .debug_info may be re-laid out.
    let mut die_ids: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut units = dwarf.units();
    let mut uix = 0;
    while let Some(header) = units.next().unwrap() {
        let unit = dwarf.unit(header).unwrap();
        let mut entries = unit.entries();
        let mut k = 0;
        while let Some(die) = entries.next_dfs().unwrap() {
            let off = die.offset().to_debug_info_offset(&unit.header).unwrap().0;
            die_ids.insert(off, (uix, k));
            k += 1;
        }
        uix += 1;
    }
    let die_name = |off: usize| -> String {
        match die_ids.get(&off) {
            Some((u, k)) => format!("u{u}#{k}"),
            None => format!("not-a-DIE@{off:#x}"),
        }
    };

    // Line programs.
    let mut units = dwarf.units();
    let mut uix = 0;
    while let Some(header) = units.next().unwrap() {
        let unit = dwarf.unit(header).unwrap();
        let enc = unit.encoding();
        if let Some(program) = unit.line_program.clone() {
            let files = format!("{:?}", program.header().file_names().len());
            let mut rows = program.rows();
            while let Some((_, row)) = rows.next_row().unwrap() {
                facts.push((
                    format!(
                        "line u{uix} files={files} file={} line={:?} col={:?} stmt={} bb={} end={} pe={} eb={} disc={} isa={}",
                        row.file_index(),
                        row.line(),
                        row.column(),
                        row.is_stmt(),
                        row.basic_block(),
                        row.end_sequence(),
                        row.prologue_end(),
                        row.epilogue_begin(),
                        row.discriminator(),
                        row.isa()
                    ),
                    vec![loc(row.address())],
                ));
            }
        }
        // DIEs.
        let mut entries = unit.entries();
        while let Some(die) = entries.next_dfs().unwrap() {
            let off = die_name(die.offset().to_debug_info_offset(&unit.header).unwrap().0);
            let tag = die.tag();
            let mut low = None;
            for attr in die.attrs() {
                if attr.name() == gimli::DW_AT_low_pc {
                    low = dwarf.attr_address(&unit, attr.value()).unwrap();
                }
            }
            for attr in die.attrs() {
                let name = attr.name();
                let key = format!("die {off} {tag} {name}");
                let v = attr.value();
                match v {
                    gimli::AttributeValue::Addr(_) | gimli::AttributeValue::DebugAddrIndex(_) => {
                        let a = dwarf.attr_address(&unit, v).unwrap().unwrap();
                        facts.push((key, vec![loc(a)]));
                    }
                    gimli::AttributeValue::Udata(n)
                        if name == gimli::DW_AT_high_pc
                            || (name == gimli::DW_AT_entry_pc && enc.version >= 5) =>
                    {
                        let l = low.expect("constant high_pc without low_pc");
                        facts.push((format!("{key} (low+const)"), vec![loc(l + n)]));
                    }
                    gimli::AttributeValue::RangeListsRef(_)
                    | gimli::AttributeValue::DebugRngListsIndex(_) => {
                        let mut it = dwarf.attr_ranges(&unit, v).unwrap().unwrap();
                        let mut locs = Vec::new();
                        while let Some(r) = it.next().unwrap() {
                            locs.push(loc(r.begin));
                            locs.push(loc(r.end));
                        }
                        facts.push((key, locs));
                    }
                    gimli::AttributeValue::LocationListsRef(_)
                    | gimli::AttributeValue::DebugLocListsIndex(_) => {
                        let mut it = dwarf.attr_locations(&unit, v).unwrap().unwrap();
                        let mut k = 0;
                        loop {
                            match it.next() {
                                Ok(Some(e)) => {
                                    let mut locs = vec![loc(e.range.begin), loc(e.range.end)];
                                    let o = ops(e.data, enc, &mut locs);
                                    facts.push((format!("{key} #{k} {o}"), locs));
                                    k += 1;
                                }
                                Ok(None) => break,
                                // gimli 0.34 does not know DW_LLE_GNU_view_pair; such lists are
                                // checked by bytes and readelf instead.
                                Err(e) => {
                                    facts.push((format!("{key} #{k} gimli: {e}"), vec![]));
                                    break;
                                }
                            }
                        }
                    }
                    gimli::AttributeValue::Exprloc(e) => {
                        let mut locs = Vec::new();
                        let o = ops(e, enc, &mut locs);
                        facts.push((format!("{key} {o}"), locs));
                    }
                    // Offsets into sections whose layout may change.
                    gimli::AttributeValue::DebugLineRef(_)
                    | gimli::AttributeValue::SecOffset(_) => {}
                    gimli::AttributeValue::UnitRef(o) => {
                        let target = o.to_debug_info_offset(&unit.header).unwrap().0;
                        facts.push((format!("{key} ref {}", die_name(target)), vec![]));
                    }
                    gimli::AttributeValue::DebugInfoRef(o) => {
                        facts.push((format!("{key} ref {}", die_name(o.0)), vec![]));
                    }
                    other => facts.push((format!("{key} {other:?}"), vec![])),
                }
            }
        }
        uix += 1;
    }

    // Address ranges.
    let mut headers = dwarf.debug_aranges.headers();
    while let Some(h) = headers.next().unwrap() {
        let mut es = h.entries();
        while let Some(e) = es.next().unwrap() {
            let r = e.range();
            facts.push(("arange".into(), vec![loc(r.begin), loc(r.end)]));
        }
    }

    // CFI.
    let mut order: Vec<_> = secs.iter().collect();
    order.sort_by_key(|(idx, _)| **idx);
    for (_, (name, data, base)) in order {
        if name == ".eh_frame" {
            let mut s = gimli::EhFrame::new(data, LittleEndian);
            s.set_address_size(8);
            let bases = gimli::BaseAddresses::default().set_eh_frame(*base);
            cfi(&s, &bases, name, &mut facts);
        } else if name == ".debug_frame" {
            let mut s = gimli::DebugFrame::new(data, LittleEndian);
            s.set_address_size(8);
            cfi(&s, &gimli::BaseAddresses::default(), name, &mut facts);
        }
    }
    facts
}

fn cfi<'a, S: UnwindSection<R<'a>>>(
    s: &S,
    bases: &gimli::BaseAddresses,
    name: &str,
    facts: &mut Vec<Fact>,
) where
    S::Offset: gimli::UnwindOffset<usize>,
{
    let mut entries = s.entries(bases);
    let mut k = 0;
    let mut ctx = gimli::UnwindContext::new();
    while let Some(e) = entries.next().unwrap() {
        let gimli::CieOrFde::Fde(partial) = e else {
            continue;
        };
        let fde = partial.parse(|s, b, o| s.cie_from_offset(b, o)).unwrap();
        let cie = fde.cie();
        facts.push((
            format!(
                "fde {name} #{k} caf={} daf={} ra={:?} aug={:?} lsda={:?}",
                cie.code_alignment_factor(),
                cie.data_alignment_factor(),
                cie.return_address_register(),
                cie.augmentation(),
                fde.lsda()
            ),
            vec![loc(fde.initial_address()), loc(fde.end_address())],
        ));
        let mut table = fde.rows(s, bases, &mut ctx).unwrap();
        // Expressions print as their bytes (gimli names them by section offset).
        let expr = |e: &gimli::UnwindExpression<usize>| -> String {
            format!("expr{:?}", e.get(s).unwrap().0.slice())
        };
        while let Some(row) = table.next_row().unwrap() {
            let regs: Vec<String> = row
                .registers()
                .map(|(r, rule)| match rule {
                    gimli::RegisterRule::Expression(e) => format!("{r:?}=Expression({})", expr(e)),
                    gimli::RegisterRule::ValExpression(e) => {
                        format!("{r:?}=ValExpression({})", expr(e))
                    }
                    other => format!("{r:?}={other:?}"),
                })
                .collect();
            let cfa = match row.cfa() {
                gimli::CfaRule::Expression(e) => format!("Expression({})", expr(e)),
                other => format!("{other:?}"),
            };
            facts.push((
                format!("cfirow {name} #{k} cfa={cfa} regs={regs:?}"),
                vec![loc(row.start_address()), loc(row.end_address())],
            ));
        }
        k += 1;
    }
}

/// Sends every location of `facts` through `maps`.
pub fn map_facts(facts: &[Fact], maps: &Maps) -> Vec<Fact> {
    facts
        .iter()
        .map(|(s, locs)| {
            let locs = locs
                .iter()
                .map(|&(sec, off)| match maps.get(&sec) {
                    Some(m) => (sec, m.map(off)),
                    None => (sec, off),
                })
                .collect();
            (s.clone(), locs)
        })
        .collect()
}

/// Asserts two fact lists are equal, showing the first difference with context.
pub fn assert_same(what: &str, got: &[Fact], want: &[Fact]) {
    if got == want {
        return;
    }
    let n = got.len().min(want.len());
    let i = (0..n).find(|&i| got[i] != want[i]).unwrap_or(n);
    let lo = i.saturating_sub(3);
    let mut msg = format!(
        "{what}: {} facts vs {} expected; first difference at #{i}\n",
        got.len(),
        want.len()
    );
    for j in lo..(i + 3).min(got.len().max(want.len())) {
        let _ = writeln!(msg, "  got  {:?}", got.get(j));
        let _ = writeln!(msg, "  want {:?}", want.get(j));
    }
    panic!("{msg}");
}

/// Counts facts per kind (first word).
pub fn census(facts: &[Fact]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (s, _) in facts {
        *m.entry(s.split(' ').next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    m
}

/// Runs `dwarf::rewrite` on object bytes.
pub fn rewrite(obj: &[u8], maps: &Maps) -> Result<Vec<RewrittenSection>, dwarf::DwarfError> {
    let file = object::read::elf::ElfFile64::<object::Endianness>::parse(obj).unwrap();
    dwarf::rewrite(&file, maps)
}

/// Section index by name (first match).
pub fn section_index(obj: &[u8], name: &str) -> Option<usize> {
    let file = object::File::parse(obj).unwrap();
    file.section_by_name(name).map(|s| s.index().0)
}

/// Section data by index.
pub fn section_data(obj: &[u8], index: usize) -> Vec<u8> {
    let file = object::File::parse(obj).unwrap();
    file.section_by_index(object::SectionIndex(index))
        .unwrap()
        .data()
        .unwrap()
        .to_vec()
}

/// Section names by index.
pub fn section_names(obj: &[u8]) -> BTreeMap<usize, String> {
    let file = object::File::parse(obj).unwrap();
    file.sections()
        .map(|s| (s.index().0, s.name().unwrap_or("").to_string()))
        .collect()
}

/// Distinct (section, offset) keys of a set of facts (for reporting).
pub fn locations(facts: &[Fact]) -> BTreeSet<Loc> {
    facts.iter().flat_map(|(_, l)| l.iter().copied()).collect()
}

/// Line rows of every program in `.debug_line`, walked unit by unit (no `.debug_info`
/// needed), with the unit lengths.
pub fn line_facts(obj: &[u8]) -> (Vec<Fact>, Vec<u64>) {
    let secs = linked_sections(obj);
    let data = secs
        .values()
        .find(|(n, _, _)| n == ".debug_line")
        .map(|(_, d, _)| d.clone())
        .unwrap_or_default();
    let dl = gimli::DebugLine::new(&data, LittleEndian);
    let mut facts = Vec::new();
    let mut lengths = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let program = dl
            .program(gimli::DebugLineOffset(off), 8, None, None)
            .unwrap();
        let h = program.header();
        let len = h.unit_length() as u64;
        let next = off + h.format().initial_length_size() as usize + len as usize;
        lengths.push(len);
        let mut rows = program.rows();
        while let Some((_, row)) = rows.next_row().unwrap() {
            facts.push((
                format!(
                    "row file={} line={:?} col={:?} stmt={} end={} disc={}",
                    row.file_index(),
                    row.line(),
                    row.column(),
                    row.is_stmt(),
                    row.end_sequence(),
                    row.discriminator()
                ),
                vec![loc(row.address())],
            ));
        }
        off = next;
    }
    (facts, lengths)
}

/// Assembles `text` with GNU `as` (`flags`), returning the object.
pub fn assemble(text: &str, flags: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.s"), text).unwrap();
    run(Command::new("as")
        .args(flags)
        .args(["-o", "t.o", "t.s"])
        .current_dir(dir.path()));
    std::fs::read(dir.path().join("t.o")).unwrap()
}
