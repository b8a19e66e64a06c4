//! The CFI oracle: `readelf -wF` (the interpreted `.eh_frame` and `.debug_frame` tables: one
//! row of CFA and register rules per address range) of both objects, compared per FDE with
//! every address turned into an instruction index of objdump's listing (site padding dropped).
//!
//! An address inside dropped padding designates the next kept instruction, so a row that
//! starts right after a site's instruction compares equal whether the producer put it before
//! or after the padding (the verifier's ORC rule is the strict one).

use super::elfinfo::ElfInfo;
use super::objdump::{at, prepare, share_bad, Checked, Prepared};
use super::{os, run, Diff, Options, ToolError};
use std::collections::BTreeMap;
use std::path::Path;

/// One FDE as readelf interprets it.
#[derive(Clone, Debug)]
struct Fde {
    /// Offset of the FDE in `.eh_frame`.
    offset: u64,
    cie: u64,
    start: u64,
    end: u64,
    /// `(location, "CFA=rsp+16 ra=c-8 ...")`.
    rows: Vec<(u64, String)>,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// CIE offset -> its initial rows.
type Cies = BTreeMap<u64, Vec<String>>;

/// The frame sections this oracle reads (both put `pc_begin` 8 bytes into an FDE: 32-bit
/// length, 32-bit CIE pointer).
const FRAME_SECTIONS: [&str; 2] = [".eh_frame", ".debug_frame"];

/// Parses `readelf -wF`: per frame section (`Contents of the .eh_frame section:`), its FDEs
/// and the initial rows of its CIEs (for FDEs without rows).
fn frames(path: &Path) -> Result<BTreeMap<String, (Vec<Fde>, Cies)>, ToolError> {
    let out = run("readelf", &["-wF".as_ref(), os(path)], None)?;
    let mut all: BTreeMap<String, (Vec<Fde>, Cies)> = BTreeMap::new();
    let mut section: Option<String> = None;
    enum Cur {
        None,
        Cie(u64),
        Fde,
    }
    let mut cur = Cur::None;
    let mut header: Vec<String> = Vec::new();
    for line in out.lines() {
        if let Some(name) = line
            .strip_prefix("Contents of the ")
            .and_then(|l| l.strip_suffix(" section:"))
        {
            if all.contains_key(name) {
                return Err(ToolError(format!(
                    "{}: readelf printed {name} twice (several sections of that name?)",
                    path.display()
                )));
            }
            all.insert(name.to_string(), Default::default());
            section = Some(name.to_string());
            cur = Cur::None;
            header.clear();
            continue;
        }
        let tok: Vec<&str> = line.split_whitespace().collect();
        let Some((fdes, cies)) = section.as_ref().and_then(|s| all.get_mut(s)) else {
            continue;
        };
        if tok.len() >= 4
            && tok[0].len() == 8
            && hex(tok[0]).is_some()
            && (tok[3] == "FDE" || tok[3] == "CIE")
        {
            let off = hex(tok[0]).unwrap_or(0);
            header.clear();
            if tok[3] == "CIE" {
                cies.insert(off, Vec::new());
                cur = Cur::Cie(off);
            } else {
                let cie = tok
                    .iter()
                    .find_map(|t| t.strip_prefix("cie="))
                    .and_then(hex);
                let pc = tok.iter().find_map(|t| t.strip_prefix("pc="));
                let (Some(cie), Some((a, b))) = (cie, pc.and_then(|p| p.split_once(".."))) else {
                    return Err(ToolError(format!(
                        "{}: cannot parse readelf FDE line `{line}`",
                        path.display()
                    )));
                };
                let (Some(start), Some(end)) = (hex(a), hex(b)) else {
                    return Err(ToolError(format!(
                        "{}: cannot parse readelf FDE line `{line}`",
                        path.display()
                    )));
                };
                fdes.push(Fde {
                    offset: off,
                    cie,
                    start,
                    end,
                    rows: Vec::new(),
                });
                cur = Cur::Fde;
            }
            continue;
        }
        if tok.first() == Some(&"LOC") {
            header = tok[1..].iter().map(|s| s.to_string()).collect();
            continue;
        }
        let Some(loc) = tok.first().filter(|t| t.len() == 16).and_then(|t| hex(t)) else {
            continue;
        };
        let text: Vec<String> = header
            .iter()
            .zip(&tok[1..])
            .map(|(h, v)| format!("{h}={v}"))
            .collect();
        let text = text.join(" ");
        match cur {
            Cur::Cie(c) => cies.entry(c).or_default().push(text),
            Cur::Fde => {
                if let Some(f) = fdes.last_mut() {
                    f.rows.push((loc, text));
                }
            }
            Cur::None => {}
        }
    }
    Ok(all)
}

/// FDEs keyed by (frame section, code section, start as instruction index): end and rows as
/// indices. The value also names the function the FDE starts in.
type Table = BTreeMap<(String, String, String), (String, Vec<(String, String)>, String)>;

fn table(path: &Path, p: &Prepared, info: &ElfInfo) -> Result<(Table, usize), ToolError> {
    let mut t = Table::new();
    let mut rows = 0;
    for (frame, (fdes, cies)) in frames(path)? {
        if !FRAME_SECTIONS.contains(&frame.as_str()) {
            continue;
        }
        let mut found = info.sections.iter().filter(|s| s.name == frame);
        let (Some(eh), None) = (found.next().map(|s| s.index), found.next()) else {
            return Err(ToolError(format!(
                "{}: readelf printed {frame}, which is not exactly one section",
                path.display()
            )));
        };
        rows += fde_table(path, p, info, &frame, eh, &fdes, &cies, &mut t)?;
    }
    Ok((t, rows))
}

/// Adds the FDEs of frame section `frame` (ELF index `eh`) to `t`; returns the rows added.
#[allow(clippy::too_many_arguments)]
fn fde_table(
    path: &Path,
    p: &Prepared,
    info: &ElfInfo,
    frame: &str,
    eh: usize,
    fdes: &[Fde],
    cies: &Cies,
    t: &mut Table,
) -> Result<usize, ToolError> {
    let mut rows = 0;
    let mut pc_relocs = std::collections::HashMap::new();
    for r in info.relocs.iter().filter(|r| r.section == eh) {
        pc_relocs.entry(r.offset).or_insert(r);
    }
    for f in fdes {
        // pc_begin is 8 bytes into the FDE; its relocation names the code section.
        let r = pc_relocs.get(&(f.offset + 8));
        let Some(sec) = r.and_then(|r| info.symbols.get(r.sym)).and_then(|s| s.ndx) else {
            return Err(ToolError(format!(
                "{}: {frame}: FDE at {:#x} has no pc_begin relocation",
                path.display(),
                f.offset
            )));
        };
        let name = info
            .section(sec)
            .map_or("?".into(), |s| format!("{}#{}", s.name, s.ordinal));
        let func = p.function_at(sec, f.start).unwrap_or("").to_string();
        let start = i64::try_from(f.start).unwrap_or(i64::MAX);
        let end = i64::try_from(f.end).unwrap_or(i64::MAX);
        let mut r: Vec<(String, String)> = f
            .rows
            .iter()
            .map(|(loc, text)| {
                (
                    at(p, sec, i64::try_from(*loc).unwrap_or(i64::MAX)),
                    text.clone(),
                )
            })
            .collect();
        if r.is_empty() {
            let init = cies
                .get(&f.cie)
                .and_then(|c| c.first())
                .cloned()
                .unwrap_or_default();
            r.push((at(p, sec, start), init));
        }
        rows += r.len();
        t.insert(
            (frame.to_string(), name, at(p, sec, start)),
            (at(p, sec, end), r, func),
        );
    }
    Ok(rows)
}

/// Compares the interpreted CFI of both objects; returns how many rows were compared (0
/// when the original has no `.eh_frame`).
pub fn cfi_equivalent(orig: &Path, burnt: &Path) -> Result<usize, Vec<Diff>> {
    cfi_equivalent_with(orig, burnt, &Options::default()).map(|c| c.compared)
}

/// [`cfi_equivalent`] with options; FDEs of functions objdump cannot decode are skipped and
/// listed.
pub fn cfi_equivalent_with(
    orig: &Path,
    burnt: &Path,
    opts: &Options,
) -> Result<Checked, Vec<Diff>> {
    let mut diffs = Vec::new();
    let (mut po, _) = prepare(orig, opts, &mut diffs, "original").map_err(|e| vec![e.into()])?;
    let (mut pb, _) = prepare(burnt, opts, &mut diffs, "burnt").map_err(|e| vec![e.into()])?;
    share_bad(&mut po, &mut pb);
    let checked = compare_prepared(orig, &po, burnt, &pb, &mut diffs)?;
    if diffs.is_empty() {
        Ok(checked)
    } else {
        Err(diffs)
    }
}

/// Whether the object has a frame section this oracle reads.
pub(crate) fn has_frames(p: &Prepared) -> bool {
    p.info
        .sections
        .iter()
        .any(|s| FRAME_SECTIONS.contains(&s.name.as_str()))
}

/// The CFI comparison of two prepared objects (see [`cfi_equivalent_with`]); a failing tool
/// is an `Err`.
pub(crate) fn compare_prepared(
    orig: &Path,
    po: &Prepared,
    burnt: &Path,
    pb: &Prepared,
    diffs: &mut Vec<Diff>,
) -> Result<Checked, Vec<Diff>> {
    let mut checked = Checked::default();
    if !has_frames(po) && !has_frames(pb) {
        return Ok(checked);
    }
    let (to, _) = table(orig, po, &po.info).map_err(|e| vec![e.into()])?;
    let (tb, _) = table(burnt, pb, &pb.info).map_err(|e| vec![e.into()])?;
    let bad: std::collections::HashSet<&str> = po
        .bad
        .iter()
        .chain(&pb.bad)
        .map(|(_, f)| f.as_str())
        .collect();
    for (key, (end, rows, func)) in &to {
        if bad.contains(func.as_str()) {
            checked.skipped.push(format!("{}:{func}", key.1));
            continue;
        }
        let Some((bend, brows, _)) = tb.get(key) else {
            diffs.push(Diff {
                section: key.1.clone(),
                function: Some(func.clone()),
                index: None,
                what: format!("{}: no FDE starts at {} in the burnt object", key.0, key.2),
                original: None,
                burnt: None,
            });
            continue;
        };
        checked.compared += rows.len();
        if end != bend {
            diffs.push(Diff {
                section: key.1.clone(),
                function: Some(func.clone()),
                index: None,
                what: format!("{}: FDE at {} ends at {end} / {bend}", key.0, key.2),
                original: Some(end.clone()),
                burnt: Some(bend.clone()),
            });
        }
        if let Some(i) = (0..rows.len().max(brows.len())).find(|&i| rows.get(i) != brows.get(i)) {
            let show = |r: Option<&(String, String)>| r.map(|(l, t)| format!("{l}: {t}"));
            diffs.push(Diff {
                section: key.1.clone(),
                function: Some(func.clone()),
                index: Some(i),
                what: format!("{}: FDE at {}: row {i} differs", key.0, key.2),
                original: show(rows.get(i)),
                burnt: show(brows.get(i)),
            });
        }
    }
    for (key, (_, _, func)) in tb.iter().filter(|(k, _)| !to.contains_key(*k)) {
        if bad.contains(func.as_str()) {
            continue;
        }
        diffs.push(Diff {
            section: key.1.clone(),
            function: Some(func.clone()),
            index: None,
            what: format!("{}: FDE at {} added in the burnt object", key.0, key.2),
            original: None,
            burnt: None,
        });
    }
    Ok(checked)
}
