//! The objdump oracle: `objdump -dr -z --no-show-raw-insn` of both objects, compared per
//! function after dropping the NOPs inside annotated sites.

use super::elfinfo::{ElfInfo, RelInfo};
use super::{os, run, Diff, Options, ToolError};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// One line of objdump's listing.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub addr: u64,
    /// Instruction text after the address (mnemonic, operands, objdump's `#` comment).
    pub text: String,
    pub function: String,
}

/// The listing of one code section.
#[derive(Clone, Debug)]
pub(crate) struct SecListing {
    pub name: String,
    pub ordinal: usize,
    pub lines: Vec<Line>,
}

/// Runs objdump and splits its output by section.
pub(crate) fn listing(path: &Path) -> Result<Vec<SecListing>, ToolError> {
    let out = run(
        "objdump",
        &[
            "-dr".as_ref(),
            "-z".as_ref(),
            "--no-show-raw-insn".as_ref(),
            os(path),
        ],
        None,
    )?;
    let mut secs: Vec<SecListing> = Vec::new();
    let mut seen = HashMap::<String, usize>::new();
    let mut function = String::new();
    for line in out.lines() {
        if let Some(name) = line
            .strip_prefix("Disassembly of section ")
            .and_then(|l| l.strip_suffix(':'))
        {
            let ordinal = {
                let n = seen.entry(name.to_string()).or_insert(0);
                *n += 1;
                *n - 1
            };
            secs.push(SecListing {
                name: name.to_string(),
                ordinal,
                lines: Vec::new(),
            });
            function.clear();
            continue;
        }
        if let Some((addr, rest)) = line.split_once(" <") {
            if let (Ok(_), Some(name)) = (u64::from_str_radix(addr, 16), rest.strip_suffix(">:")) {
                function = name.to_string();
                continue;
            }
        }
        if line.starts_with("\t\t\t") {
            continue; // relocation line: relocations are taken from readelf (exact addends)
        }
        let Some((addr, text)) = line.trim_start().split_once(":\t") else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        let Some(sec) = secs.last_mut() else { continue };
        sec.lines.push(Line {
            addr,
            text: text.to_string(),
            function: function.clone(),
        });
    }
    Ok(secs)
}

fn is_nop(text: &str) -> bool {
    let t = text
        .split_whitespace()
        .filter(|w| !matches!(*w, "data16" | "cs" | "ds" | "rex" | "rex.W"))
        .collect::<Vec<_>>();
    match t.first() {
        Some(m) if m.starts_with("nop") => true,
        Some(&"xchg") => t.get(1) == Some(&"%ax,%ax"),
        _ => false,
    }
}

/// An instruction kept for comparison.
#[derive(Clone, Debug)]
pub(crate) struct Kept {
    pub addr: u64,
    end: u64,
    pub function: String,
    text: String,
}

/// One object's code, prepared.
pub(crate) struct Prepared {
    pub info: ElfInfo,
    /// ELF section index -> kept instructions.
    pub kept: HashMap<usize, Vec<Kept>>,
    /// ELF section index -> address -> kept index.
    index: HashMap<usize, BTreeMap<u64, usize>>,
    /// ELF section index -> addresses of dropped instructions.
    dropped: HashMap<usize, HashSet<u64>>,
    /// (name, ordinal) -> ELF section index of code sections.
    pub by_name: HashMap<(String, usize), usize>,
    /// ELF section index -> indices into `info.relocs`, sorted by offset.
    relocs_by_section: HashMap<usize, Vec<usize>>,
    /// ELF section index -> for each kept instruction, its index within its function.
    rel: HashMap<usize, Vec<usize>>,
    /// (section, function) pairs objdump could not decode (it printed `(bad)`).
    pub bad: HashSet<(usize, String)>,
    /// Names of functions objdump could not decode in either object (see [`share_bad`]).
    bad_names: HashSet<String>,
}

/// Makes both objects treat a function objdump could not decode in either of them as
/// undecodable: places inside it are then designated only by the function.
pub(crate) fn share_bad(po: &mut Prepared, pb: &mut Prepared) {
    let names: HashSet<String> = po
        .bad
        .iter()
        .chain(&pb.bad)
        .map(|(_, f)| f.clone())
        .collect();
    po.bad_names = names.clone();
    pb.bad_names = names;
}

impl Prepared {
    /// Function of the kept instruction at or before address `x` of section `sec`.
    pub(crate) fn function_at(&self, sec: usize, x: u64) -> Option<&str> {
        let (_, &i) = self.index.get(&sec)?.range(..=x).next_back()?;
        Some(self.kept[&sec][i].function.as_str())
    }
}

/// Result of an oracle that compared something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// How many things were compared (functions, addresses or CFI rows).
    pub compared: usize,
    /// Instructions compared (objdump oracle: kept instructions of the compared functions in
    /// the original; 0 for the other oracles).
    pub instructions: usize,
    /// Functions skipped because objdump could not decode them (`(bad)`: an instruction newer
    /// than this binutils, e.g. LKGS in binutils 2.40), as `section:function`.
    pub skipped: Vec<String>,
}

/// The kept-instruction index designation of address `x` in code section `sec`.
pub(crate) fn at(p: &Prepared, sec: usize, x: i64) -> String {
    let name = p
        .info
        .section(sec)
        .map_or("?".to_string(), |s| format!("{}#{}", s.name, s.ordinal));
    let (Some(map), Ok(ux)) = (p.index.get(&sec), u64::try_from(x)) else {
        return format!("{name}:raw{x:#x}");
    };
    let size = p.info.section(sec).map_or(0, |s| s.size);
    if ux == size {
        return format!("{name}:END");
    }
    // Instruction i as `function#index-within-function`: robust against other functions.
    let insn = |i: usize| {
        let k = &p.kept[&sec][i];
        if p.bad_names.contains(&k.function) {
            return format!("{name}:{}#?", k.function);
        }
        let r = p.rel.get(&sec).and_then(|r| r.get(i)).copied().unwrap_or(i);
        format!("{name}:{}#{r}", k.function)
    };
    if let Some(&i) = map.get(&ux) {
        return insn(i);
    }
    if p.dropped.get(&sec).is_some_and(|d| d.contains(&ux)) {
        // Inside dropped padding/alignment: designate the next kept instruction.
        if let Some((_, &i)) = map.range(ux..).next() {
            return insn(i);
        }
        return format!("{name}:END");
    }
    match map.range(..ux).next_back() {
        Some((a, &i)) if p.bad_names.contains(&p.kept[&sec][i].function) => {
            let _ = a;
            insn(i)
        }
        Some((a, &i)) => format!("{}+{}", insn(i), ux - a),
        None => format!("{name}:raw{x:#x}"),
    }
}

fn pc_direct(r_type: &str) -> bool {
    matches!(
        r_type,
        "R_X86_64_PC32" | "R_X86_64_PLT32" | "R_X86_64_PC64" | "R_X86_64_PC16" | "R_X86_64_PC8"
    )
}

/// What a relocation designates, independent of layout.
fn reloc_target(p: &Prepared, r: &RelInfo, bias: i64) -> String {
    let Some(sym) = p.info.symbols.get(r.sym) else {
        return format!("<bad symbol {}>", r.sym);
    };
    if let Some(sec) = sym.ndx {
        if p.kept.contains_key(&sec) {
            let direct = !r.r_type.contains("GOT")
                && !r.r_type.contains("TPOFF")
                && !r.r_type.contains("TLS");
            let place = if direct {
                at(p, sec, sym.value as i64 + r.addend + bias)
            } else {
                format!("{}{:+#x}", at(p, sec, sym.value as i64), r.addend + bias)
            };
            return if sym.typ == "SECTION" {
                place
            } else {
                format!("{}={place}", sym.name)
            };
        }
    }
    let name = if sym.typ == "SECTION" {
        sym.ndx
            .and_then(|s| p.info.section(s))
            .map_or("?".to_string(), |s| format!("{}#{}", s.name, s.ordinal))
    } else {
        sym.name.clone()
    };
    format!("{name}{:+#x}", r.addend + bias)
}

pub(crate) fn prepare(
    path: &Path,
    opts: &Options,
    diffs: &mut Vec<Diff>,
    side: &str,
) -> Result<(Prepared, Vec<SecListing>), ToolError> {
    let info = ElfInfo::read(path)?;
    let secs = listing(path)?;
    let mut p = Prepared {
        info,
        kept: HashMap::new(),
        index: HashMap::new(),
        dropped: HashMap::new(),
        by_name: HashMap::new(),
        relocs_by_section: HashMap::new(),
        rel: HashMap::new(),
        bad: HashSet::new(),
        bad_names: HashSet::new(),
    };
    for (i, r) in p.info.relocs.iter().enumerate() {
        p.relocs_by_section.entry(r.section).or_default().push(i);
    }
    for v in p.relocs_by_section.values_mut() {
        v.sort_by_key(|&i| p.info.relocs[i].offset);
    }
    for s in &secs {
        let Some(sec) = p
            .info
            .sections
            .iter()
            .find(|x| x.name == s.name && x.ordinal == s.ordinal && x.exec)
        else {
            return Err(ToolError(format!(
                "{}: objdump section {} not in readelf's table",
                path.display(),
                s.name
            )));
        };
        let (idx, size) = (sec.index, sec.size);
        p.by_name.insert((s.name.clone(), s.ordinal), idx);
        let mut pads: Vec<(u64, u64)> = p
            .info
            .sites
            .iter()
            .filter(|x| x.section == idx && x.site_len > x.insn_len)
            .map(|x| {
                (
                    x.offset + u64::from(x.insn_len),
                    x.offset + u64::from(x.site_len),
                )
            })
            .collect();
        pads.sort_unstable();
        for l in &s.lines {
            if l.text.contains("(bad)") {
                p.bad.insert((idx, l.function.clone()));
            }
        }
        let mut kept = Vec::new();
        let mut dropped = HashSet::new();
        for (i, l) in s.lines.iter().enumerate() {
            let end = s.lines.get(i + 1).map_or(size, |n| n.addr);
            // Pads do not overlap: the last one starting at or before the address.
            let in_pad = pads[..pads.partition_point(|&(a, _)| a <= l.addr)]
                .last()
                .filter(|&&(_, e)| l.addr < e);
            if let Some(&(_, pe)) = in_pad {
                if (!is_nop(&l.text) || end > pe) && !p.bad.contains(&(idx, l.function.clone())) {
                    diffs.push(Diff {
                        section: s.name.clone(),
                        function: Some(l.function.clone()),
                        index: None,
                        what: format!(
                            "{side}: {:#x} inside site padding is not a NOP ending in the site",
                            l.addr
                        ),
                        original: None,
                        burnt: Some(l.text.clone()),
                    });
                }
                dropped.insert(l.addr);
                continue;
            }
            if opts.realign && is_nop(&l.text) {
                dropped.insert(l.addr);
                continue;
            }
            kept.push(Kept {
                addr: l.addr,
                end,
                function: l.function.clone(),
                text: l.text.clone(),
            });
        }
        let index = kept.iter().enumerate().map(|(i, k)| (k.addr, i)).collect();
        let mut rel = Vec::with_capacity(kept.len());
        for (i, k) in kept.iter().enumerate() {
            let same = i > 0 && kept[i - 1].function == k.function;
            rel.push(if same { rel[i - 1] + 1 } else { 0 });
        }
        p.rel.insert(idx, rel);
        p.index.insert(idx, index);
        p.kept.insert(idx, kept);
        p.dropped.insert(idx, dropped);
    }
    Ok((p, secs))
}

/// Normalised text of kept instruction `k` of section `sec`.
fn normalise(p: &Prepared, sec: usize, k: &Kept) -> String {
    let rels: Vec<&RelInfo> = match p.relocs_by_section.get(&sec) {
        Some(v) => {
            let a = v.partition_point(|&i| p.info.relocs[i].offset < k.addr);
            let b = v.partition_point(|&i| p.info.relocs[i].offset < k.end);
            v[a..b].iter().map(|&i| &p.info.relocs[i]).collect()
        }
        None => Vec::new(),
    };
    let (ops_part, comment) = match k.text.find(" # ").or_else(|| k.text.find("\t# ")) {
        Some(i) => (&k.text[..i], Some(k.text[i + 3..].trim())),
        None => (k.text.as_str(), None),
    };
    let words: Vec<&str> = ops_part.split_whitespace().collect();
    let mut text = words.join(" ");
    // Direct branch: `jmp 120 <entry+0x120>`.
    if let Some(lt) = text.find(" <") {
        let before = &text[..lt];
        if let Some((head, target)) = before.rsplit_once(' ') {
            if let Ok(t) = u64::from_str_radix(target, 16) {
                let dest = if rels.is_empty() {
                    at(p, sec, t as i64)
                } else {
                    "R".to_string()
                };
                text = format!("{head} @{dest}");
            }
        }
    }
    // RIP-relative: displacement and objdump's target comment.
    if let Some(i) = text.find("(%rip)") {
        let start = text[..i].rfind([',', ' ']).map_or(0, |j| j + 1);
        text = format!("{}X{}", &text[..start], &text[i..]);
        if rels.is_empty() {
            if let Some(t) = comment
                .and_then(|c| c.split_whitespace().next())
                .and_then(|a| u64::from_str_radix(a, 16).ok())
            {
                text.push_str(&format!(" # @{}", at(p, sec, t as i64)));
            }
        }
    }
    let text = text
        .replace("jmpq ", "jmp ")
        .replace("callq ", "call ")
        .replace("retq", "ret");
    let mut out = text;
    for r in rels {
        let bias = if pc_direct(&r.r_type) || r.r_type.contains("GOTPC") {
            k.end as i64 - r.offset as i64
        } else {
            0
        };
        out.push_str(&format!(
            " [{}@+{} {}]",
            r.r_type,
            r.offset - k.addr,
            reloc_target(p, r, bias)
        ));
    }
    out
}

/// Places in data sections that code refers to (section -> offsets): bases of relative tables.
fn code_refs(p: &Prepared) -> HashMap<usize, std::collections::BTreeSet<u64>> {
    let mut out: HashMap<usize, std::collections::BTreeSet<u64>> = HashMap::new();
    for r in &p.info.relocs {
        let Some(kept) = p.kept.get(&r.section) else {
            continue;
        };
        let Some(sym) = p.info.symbols.get(r.sym) else {
            continue;
        };
        let Some(x) = sym.ndx.filter(|x| !p.kept.contains_key(x)) else {
            continue;
        };
        // Bias of a PC-relative operand: from the field to the end of its instruction.
        let i = kept.partition_point(|k| k.addr <= r.offset);
        let bias = match (
            pc_direct(&r.r_type),
            i.checked_sub(1).and_then(|i| kept.get(i)),
        ) {
            (true, Some(k)) => {
                i64::try_from(k.end).unwrap_or(0) - i64::try_from(r.offset).unwrap_or(0)
            }
            _ => 0,
        };
        if let Ok(t) = u64::try_from(i64::try_from(sym.value).unwrap_or(0) + r.addend + bias) {
            out.entry(x).or_default().insert(t);
        }
    }
    out
}

fn is_layout_section(name: &str) -> bool {
    name == ".eh_frame" || name.starts_with(".debug_") || name == annotations::SECTION_NAME
}

/// Compares the disassembly of `orig` and `burnt` (see the module documentation).
pub fn objdump_equivalent(orig: &Path, burnt: &Path) -> Result<(), Vec<Diff>> {
    objdump_equivalent_with(orig, burnt, &Options::default()).map(|_| ())
}

/// [`objdump_equivalent`] with options.
pub fn objdump_equivalent_with(
    orig: &Path,
    burnt: &Path,
    opts: &Options,
) -> Result<Checked, Vec<Diff>> {
    let mut diffs = Vec::new();
    let (mut po, lo) = prepare(orig, opts, &mut diffs, "original").map_err(|e| vec![e.into()])?;
    let (mut pb, lb) = prepare(burnt, opts, &mut diffs, "burnt").map_err(|e| vec![e.into()])?;
    share_bad(&mut po, &mut pb);
    let checked = compare_prepared(&po, &lo, &pb, &lb, &mut diffs);
    if diffs.is_empty() {
        Ok(checked)
    } else {
        Err(diffs)
    }
}

/// The objdump comparison of two prepared objects (see [`objdump_equivalent_with`]).
pub(crate) fn compare_prepared(
    po: &Prepared,
    lo: &[SecListing],
    pb: &Prepared,
    lb: &[SecListing],
    diffs: &mut Vec<Diff>,
) -> Checked {
    let mut checked = Checked::default();
    let names = |l: &[SecListing]| {
        l.iter()
            .map(|s| (s.name.clone(), s.ordinal))
            .collect::<Vec<_>>()
    };
    if names(lo) != names(lb) {
        diffs.push(Diff::tool(format!(
            "code sections differ: {:?} vs {:?}",
            names(lo),
            names(lb)
        )));
    }
    for s in lo {
        let key = (s.name.clone(), s.ordinal);
        let (Some(&so), Some(&sb)) = (po.by_name.get(&key), pb.by_name.get(&key)) else {
            continue;
        };
        let ko = &po.kept[&so];
        let kb = &pb.kept[&sb];
        // Group by function, in order.
        let group = |p: &Prepared, sec: usize, k: &[Kept]| {
            let mut g: Vec<(String, Vec<String>)> = Vec::new();
            for x in k {
                if g.last().is_none_or(|(f, _)| *f != x.function) {
                    g.push((x.function.clone(), Vec::new()));
                }
                g.last_mut().expect("pushed").1.push(normalise(p, sec, x));
            }
            g
        };
        let go = group(po, so, ko);
        let gb = group(pb, sb, kb);
        let fo: Vec<&String> = go.iter().map(|g| &g.0).collect();
        let fb: Vec<&String> = gb.iter().map(|g| &g.0).collect();
        if fo != fb {
            diffs.push(Diff {
                section: s.name.clone(),
                function: None,
                index: None,
                what: "different functions".into(),
                original: Some(format!("{fo:?}")),
                burnt: Some(format!("{fb:?}")),
            });
            continue;
        }
        for ((f, a), (_, b)) in go.iter().zip(&gb) {
            if po.bad.contains(&(so, f.clone())) || pb.bad.contains(&(sb, f.clone())) {
                checked.skipped.push(format!("{}:{f}", s.name));
                continue;
            }
            checked.compared += 1;
            checked.instructions += a.len();
            let n = a.len().max(b.len());
            if let Some(i) = (0..n).find(|&i| a.get(i) != b.get(i)) {
                diffs.push(Diff {
                    section: s.name.clone(),
                    function: Some(f.clone()),
                    index: Some(i),
                    what: if a.len() != b.len() && (a.get(i).is_none() || b.get(i).is_none()) {
                        format!("instruction count {} vs {}", a.len(), b.len())
                    } else {
                        "different instruction".into()
                    },
                    original: a.get(i).cloned(),
                    burnt: b.get(i).cloned(),
                });
            }
        }
    }
    // Relocations of data sections: same offsets, same designations.
    let data_relocs = |p: &Prepared| {
        let bases = code_refs(p);
        let mut m: BTreeMap<(String, usize), Vec<String>> = BTreeMap::new();
        for r in &p.info.relocs {
            let Some(sec) = p.info.section(r.section) else {
                continue;
            };
            if sec.exec || is_layout_section(&sec.name) {
                continue;
            }
            // A relative table entry (`.long target - base`, base referred to by code):
            // designate the target and the distance to the base.
            let base = bases
                .get(&r.section)
                .and_then(|b| b.range(..=r.offset).next_back());
            let target_in_code = p
                .info
                .symbols
                .get(r.sym)
                .and_then(|s| s.ndx)
                .is_some_and(|x| p.kept.contains_key(&x));
            let designation = match base {
                Some(&b) if pc_direct(&r.r_type) && target_in_code && b < r.offset => {
                    let d = i64::try_from(r.offset - b).unwrap_or(0);
                    format!("table[{d}] {}", reloc_target(p, r, -d))
                }
                _ => reloc_target(p, r, 0),
            };
            m.entry((sec.name.clone(), sec.ordinal))
                .or_default()
                .push(format!("{:#x} {} {designation}", r.offset, r.r_type));
        }
        m
    };
    let (ro, rb) = (data_relocs(po), data_relocs(pb));
    for (key, a) in &ro {
        let b = rb.get(key).cloned().unwrap_or_default();
        if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
            diffs.push(Diff {
                section: key.0.clone(),
                function: None,
                index: Some(i),
                what: "different relocation".into(),
                original: a.get(i).cloned(),
                burnt: b.get(i).cloned(),
            });
        }
    }
    for key in rb.keys().filter(|k| !ro.contains_key(*k)) {
        diffs.push(Diff {
            section: key.0.clone(),
            function: None,
            index: None,
            what: "relocations added".into(),
            original: None,
            burnt: None,
        });
    }
    checked
}
