//! The addr2line oracle: every kept instruction start (site padding dropped) maps to the same
//! inline chain of functions and file:line in both objects.

use super::objdump::{prepare, share_bad, Checked, Prepared};
use super::{os, run, Diff, Options, ToolError};
use std::path::Path;

/// Runs `addr2line -a -f -i -j SECTION` on `addrs` and returns one group of output lines per
/// address (function and file:line pairs, innermost inline frame first).
fn lookup(path: &Path, section: &str, addrs: &[u64]) -> Result<Vec<Vec<String>>, ToolError> {
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let out = run(
        "addr2line",
        &[
            "-e".as_ref(),
            os(path),
            "-a".as_ref(),
            "-f".as_ref(),
            "-i".as_ref(),
            "-j".as_ref(),
            section.as_ref(),
        ],
        Some(&input),
    )?;
    let mut groups: Vec<Vec<String>> = Vec::new();
    for line in out.lines() {
        let is_addr = line
            .strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()));
        if is_addr {
            groups.push(Vec::new());
        } else if let Some(g) = groups.last_mut() {
            g.push(line.to_string());
        }
    }
    if groups.len() != addrs.len() {
        return Err(ToolError(format!(
            "{}: addr2line answered {} of {} addresses in {section}",
            path.display(),
            groups.len(),
            addrs.len()
        )));
    }
    Ok(groups)
}

pub(crate) fn has_lines(p: &Prepared) -> bool {
    p.info.sections.iter().any(|s| s.name == ".debug_line")
}

/// Compares line information at every kept instruction start; returns how many addresses were
/// compared (0 when the original has no `.debug_line`).
pub fn addr2line_equivalent(orig: &Path, burnt: &Path) -> Result<usize, Vec<Diff>> {
    addr2line_equivalent_with(orig, burnt, &Options::default()).map(|c| c.compared)
}

/// [`addr2line_equivalent`] with options; functions objdump cannot decode are skipped and
/// listed.
pub fn addr2line_equivalent_with(
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

/// The addr2line comparison of two prepared objects (see [`addr2line_equivalent_with`]); a
/// failing tool is an `Err`.
pub(crate) fn compare_prepared(
    orig: &Path,
    po: &Prepared,
    burnt: &Path,
    pb: &Prepared,
    diffs: &mut Vec<Diff>,
) -> Result<Checked, Vec<Diff>> {
    let mut checked = Checked::default();
    if !has_lines(po) {
        return Ok(checked);
    }
    let mut keys: Vec<&(String, usize)> = po.by_name.keys().collect();
    keys.sort();
    for key in keys {
        let (name, ordinal) = key;
        if *ordinal > 0 || po.by_name.contains_key(&(name.clone(), 1)) {
            // `addr2line -j` names sections; a repeated name is ambiguous.
            checked
                .skipped
                .push(format!("{name} (section name not unique)"));
            continue;
        }
        let (Some(&so), Some(&sb)) = (po.by_name.get(key), pb.by_name.get(key)) else {
            diffs.push(Diff::tool(format!(
                "code section {name} missing in the burnt object"
            )));
            continue;
        };
        // Pair the instructions function by function.
        let runs = |k: &[super::objdump::Kept]| {
            let mut g: Vec<(String, Vec<(u64, String)>)> = Vec::new();
            for x in k {
                if g.last().is_none_or(|(f, _)| *f != x.function) {
                    g.push((x.function.clone(), Vec::new()));
                }
                g.last_mut()
                    .expect("pushed")
                    .1
                    .push((x.addr, x.function.clone()));
            }
            g
        };
        let (go, gb) = (runs(&po.kept[&so]), runs(&pb.kept[&sb]));
        if go.iter().map(|g| &g.0).ne(gb.iter().map(|g| &g.0)) {
            diffs.push(Diff {
                section: name.clone(),
                function: None,
                index: None,
                what: "different functions".into(),
                original: None,
                burnt: None,
            });
            continue;
        }
        let (mut ao, mut ab, mut who) = (Vec::new(), Vec::new(), Vec::new());
        for ((f, a), (_, b)) in go.iter().zip(&gb) {
            if po.bad.contains(&(so, f.clone())) || pb.bad.contains(&(sb, f.clone())) {
                checked.skipped.push(format!("{name}:{f}"));
                continue;
            }
            if a.len() != b.len() {
                diffs.push(Diff {
                    section: name.clone(),
                    function: Some(f.clone()),
                    index: None,
                    what: format!(
                        "{} instructions vs {} (after dropping padding)",
                        a.len(),
                        b.len()
                    ),
                    original: None,
                    burnt: None,
                });
                continue;
            }
            for (i, ((x, _), (y, _))) in a.iter().zip(b).enumerate() {
                ao.push(*x);
                ab.push(*y);
                who.push((f.clone(), i));
            }
        }
        if ao.is_empty() {
            continue;
        }
        let lo = lookup(orig, name, &ao).map_err(|e| vec![e.into()])?;
        let lb = lookup(burnt, name, &ab).map_err(|e| vec![e.into()])?;
        for (i, (a, b)) in lo.iter().zip(&lb).enumerate() {
            checked.compared += 1;
            if a != b {
                diffs.push(Diff {
                    section: name.clone(),
                    function: Some(who[i].0.clone()),
                    index: Some(who[i].1),
                    what: format!(
                        "line information differs at original {:#x} / burnt {:#x}",
                        ao[i], ab[i]
                    ),
                    original: Some(a.join(" | ")),
                    burnt: Some(b.join(" | ")),
                });
            }
        }
    }
    Ok(checked)
}
