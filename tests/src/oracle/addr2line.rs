//! The addr2line oracle: every kept instruction start (site padding dropped) maps to the same
//! inline chain of functions and file:line in both objects.

use super::objdump::{prepare, Prepared};
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

fn has_lines(p: &Prepared) -> bool {
    p.info.sections.iter().any(|s| s.name == ".debug_line")
}

/// Compares line information at every kept instruction start; returns how many addresses were
/// compared (0 when the original has no `.debug_line`).
pub fn addr2line_equivalent(orig: &Path, burnt: &Path) -> Result<usize, Vec<Diff>> {
    addr2line_equivalent_with(orig, burnt, &Options::default())
}

/// [`addr2line_equivalent`] with options.
pub fn addr2line_equivalent_with(
    orig: &Path,
    burnt: &Path,
    opts: &Options,
) -> Result<usize, Vec<Diff>> {
    let mut diffs = Vec::new();
    let (po, _) = prepare(orig, opts, &mut diffs, "original").map_err(|e| vec![e.into()])?;
    let (pb, _) = prepare(burnt, opts, &mut diffs, "burnt").map_err(|e| vec![e.into()])?;
    if !has_lines(&po) {
        return if diffs.is_empty() { Ok(0) } else { Err(diffs) };
    }
    let mut compared = 0;
    let mut keys: Vec<&(String, usize)> = po.by_name.keys().collect();
    keys.sort();
    for key in keys {
        let (name, ordinal) = key;
        if *ordinal > 0 || po.by_name.contains_key(&(name.clone(), 1)) {
            // `addr2line -j` names sections; a repeated name is ambiguous.
            continue;
        }
        let (Some(&so), Some(&sb)) = (po.by_name.get(key), pb.by_name.get(key)) else {
            diffs.push(Diff::tool(format!(
                "code section {name} missing in the burnt object"
            )));
            continue;
        };
        let ko = &po.kept[&so];
        let kb = &pb.kept[&sb];
        if ko.len() != kb.len() {
            diffs.push(Diff {
                section: name.clone(),
                function: None,
                index: None,
                what: format!(
                    "{} instructions vs {} (after dropping padding)",
                    ko.len(),
                    kb.len()
                ),
                original: None,
                burnt: None,
            });
            continue;
        }
        let ao: Vec<u64> = ko.iter().map(|k| k.addr).collect();
        let ab: Vec<u64> = kb.iter().map(|k| k.addr).collect();
        let go = lookup(orig, name, &ao).map_err(|e| vec![e.into()])?;
        let gb = lookup(burnt, name, &ab).map_err(|e| vec![e.into()])?;
        for (i, (a, b)) in go.iter().zip(&gb).enumerate() {
            compared += 1;
            if a != b {
                diffs.push(Diff {
                    section: name.clone(),
                    function: Some(ko[i].function.clone()),
                    index: Some(i),
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
    if diffs.is_empty() {
        Ok(compared)
    } else {
        Err(diffs)
    }
}
