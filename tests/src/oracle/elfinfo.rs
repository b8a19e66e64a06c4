//! Section, symbol, relocation and site tables of an object, as `readelf -W` prints them.

use super::{os, run, ToolError};
use std::path::Path;

/// A section header.
#[derive(Clone, Debug)]
pub(crate) struct SecInfo {
    pub index: usize,
    pub name: String,
    /// Which section of this name it is (0 for the first).
    pub ordinal: usize,
    pub sh_type: String,
    pub exec: bool,
    pub size: u64,
    /// `sh_info` (the target section of a relocation section).
    pub info: usize,
}

/// A symbol.
#[derive(Clone, Debug)]
pub(crate) struct SymInfo {
    pub value: u64,
    pub typ: String,
    /// Defining section index (`None` for UND/ABS/COM).
    pub ndx: Option<usize>,
    pub name: String,
}

/// A relocation.
#[derive(Clone, Debug)]
pub(crate) struct RelInfo {
    /// Section the relocation applies to.
    pub section: usize,
    pub offset: u64,
    pub r_type: String,
    pub sym: usize,
    pub addend: i64,
}

/// A `.afterburn` site, resolved to its section and offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    pub section: usize,
    pub offset: u64,
    pub insn_len: u8,
    pub site_len: u8,
}

#[derive(Clone, Debug)]
pub(crate) struct ElfInfo {
    pub sections: Vec<SecInfo>,
    pub symbols: Vec<SymInfo>,
    pub relocs: Vec<RelInfo>,
    pub sites: Vec<Site>,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn bad(path: &Path, what: &str, line: &str) -> ToolError {
    ToolError(format!(
        "{}: cannot parse readelf {what} line `{line}`",
        path.display()
    ))
}

impl ElfInfo {
    pub fn read(path: &Path) -> Result<ElfInfo, ToolError> {
        let mut info = ElfInfo {
            sections: Vec::new(),
            symbols: Vec::new(),
            relocs: Vec::new(),
            sites: Vec::new(),
        };
        info.read_sections(path)?;
        info.read_symbols(path)?;
        info.read_relocs(path)?;
        info.read_sites(path)?;
        Ok(info)
    }

    pub fn section(&self, index: usize) -> Option<&SecInfo> {
        self.sections.iter().find(|s| s.index == index)
    }

    fn read_sections(&mut self, path: &Path) -> Result<(), ToolError> {
        let out = run("readelf", &["-SW".as_ref(), os(path)], None)?;
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for line in out.lines() {
            let t = line.trim_start();
            let Some(rest) = t.strip_prefix('[') else {
                continue;
            };
            let Some((num, rest)) = rest.split_once(']') else {
                continue;
            };
            let Ok(index) = num.trim().parse::<usize>() else {
                continue;
            };
            let tok: Vec<&str> = rest.split_whitespace().collect();
            if index == 0 {
                continue;
            }
            // Name Type Address Off Size ES [Flg] Lk Inf Al
            let (name, sh_type, flags, inf) = match tok.len() {
                10 => (tok[0], tok[1], tok[6], tok[8]),
                9 => (tok[0], tok[1], "", tok[7]),
                _ => return Err(bad(path, "section", line)),
            };
            let ordinal = {
                let n = seen.entry(name.to_string()).or_insert(0);
                *n += 1;
                *n - 1
            };
            self.sections.push(SecInfo {
                index,
                name: name.to_string(),
                ordinal,
                sh_type: sh_type.to_string(),
                exec: flags.contains('X'),
                size: hex(tok[4]).ok_or_else(|| bad(path, "section", line))?,
                info: inf.parse().map_err(|_| bad(path, "section", line))?,
            });
        }
        Ok(())
    }

    fn read_symbols(&mut self, path: &Path) -> Result<(), ToolError> {
        let out = run("readelf", &["-sW".as_ref(), os(path)], None)?;
        for line in out.lines() {
            let tok: Vec<&str> = line.split_whitespace().collect();
            let Some(num) = tok
                .first()
                .and_then(|t| t.strip_suffix(':'))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            if tok.len() < 7 {
                return Err(bad(path, "symbol", line));
            }
            // Num: Value Size Type Bind Vis Ndx [Name]
            let ndx = tok[6].parse::<usize>().ok();
            let name = tok.get(7..).map(|n| n.join(" ")).unwrap_or_default();
            if num != self.symbols.len() {
                return Err(bad(path, "symbol (out of order)", line));
            }
            self.symbols.push(SymInfo {
                value: hex(tok[1]).ok_or_else(|| bad(path, "symbol", line))?,
                typ: tok[3].to_string(),
                ndx,
                name,
            });
        }
        Ok(())
    }

    fn read_relocs(&mut self, path: &Path) -> Result<(), ToolError> {
        let out = run("readelf", &["-rW".as_ref(), os(path)], None)?;
        let mut target = None;
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("Relocation section '") {
                let name = rest.split('\'').next().unwrap_or("");
                let ordinal = {
                    let n = seen.entry(name.to_string()).or_insert(0);
                    *n += 1;
                    *n - 1
                };
                let sec = self
                    .sections
                    .iter()
                    .find(|s| s.name == name && s.ordinal == ordinal);
                if sec.is_some_and(|s| s.sh_type != "RELA") {
                    return Err(ToolError(format!("{}: {name} is not RELA", path.display())));
                }
                target = sec.map(|s| s.info);
                continue;
            }
            let tok: Vec<&str> = line.split_whitespace().collect();
            let (Some(section), Some(off), Some(infow)) = (
                target,
                tok.first().and_then(|t| hex(t)),
                tok.get(1).and_then(|t| hex(t)),
            ) else {
                continue;
            };
            if tok.len() < 3 || tok[0].len() < 8 {
                continue;
            }
            let sym = usize::try_from(infow >> 32).unwrap_or(usize::MAX);
            let addend = if let Some((_, a)) = line.rsplit_once(" + ") {
                hex(a.trim()).and_then(|v| i64::try_from(v).ok())
            } else if let Some((_, a)) = line.rsplit_once(" - ") {
                hex(a.trim())
                    .and_then(|v| i64::try_from(v).ok())
                    .map(|v| -v)
            } else {
                tok.last()
                    .and_then(|t| hex(t))
                    .and_then(|v| i64::try_from(v).ok())
            }
            .ok_or_else(|| bad(path, "relocation", line))?;
            self.relocs.push(RelInfo {
                section,
                offset: off,
                r_type: tok[2].to_string(),
                sym,
                addend,
            });
        }
        Ok(())
    }

    fn read_sites(&mut self, path: &Path) -> Result<(), ToolError> {
        let Some(ab) = self
            .sections
            .iter()
            .find(|s| s.name == annotations::SECTION_NAME)
            .map(|s| s.index)
        else {
            return Ok(());
        };
        let dir = tempfile::tempdir().map_err(|e| ToolError(format!("temp dir: {e}")))?;
        let bin = dir.path().join("afterburn.bin");
        let junk = dir.path().join("junk.o");
        let spec = format!("{}={}", annotations::SECTION_NAME, bin.display());
        run(
            "objcopy",
            &[
                "--dump-section".as_ref(),
                spec.as_ref(),
                os(path),
                os(&junk),
            ],
            None,
        )?;
        let bytes =
            std::fs::read(&bin).map_err(|e| ToolError(format!("{}: {e}", bin.display())))?;
        let mut by_offset = std::collections::HashMap::<u64, &RelInfo>::new();
        for r in self.relocs.iter().filter(|r| r.section == ab) {
            by_offset.entry(r.offset).or_insert(r);
        }
        for item in annotations::Sites::new(&bytes) {
            let (off, rec) =
                item.map_err(|e| ToolError(format!("{}: .afterburn: {e}", path.display())))?;
            let r = by_offset.get(&(off as u64)).copied().ok_or_else(|| {
                ToolError(format!(
                    "{}: .afterburn record at {off:#x} has no relocation",
                    path.display()
                ))
            })?;
            let sym = self.symbols.get(r.sym).ok_or_else(|| {
                ToolError(format!(
                    "{}: relocation names a missing symbol",
                    path.display()
                ))
            })?;
            let (Some(section), Ok(offset)) = (sym.ndx, u64::try_from(sym.value as i64 + r.addend))
            else {
                return Err(ToolError(format!(
                    "{}: .afterburn record at {off:#x} points nowhere",
                    path.display()
                )));
            };
            self.sites.push(Site {
                section,
                offset,
                insn_len: rec.insn_len,
                site_len: rec.site_len,
            });
        }
        Ok(())
    }
}
