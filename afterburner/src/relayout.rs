//! Plan: the new layout of one code section. Never touches bytes.
//!
//! Input: the section length, its [`Site`]s (each padded to
//! [`annotations::site_len`] unless marked unpadded), its [`Fixup`]s, and extra NOP
//! insertions asked for by special sections (an `.altinstructions` original region that must
//! grow to hold its padded replacement).
//!
//! Output: the [`OffsetMap`] and, for every fixup, whether it is widened. Padding after a site
//! is an insertion at the site's end; a widened short branch grows at its end (3 bytes for
//! `jmp`, 4 for `jcc`, 3 for a 2-byte jump-label NOP that becomes a 5-byte NOP). Widening
//! moves code, which can push other short branches out of range, so the plan iterates to a
//! fixpoint; it terminates because branches only ever widen.

use crate::decode::{Fixup, FixupKind, Site};
use crate::error::{Error, ErrorKind, Result};
use crate::offset_map::OffsetMap;

/// The plan of one section.
#[derive(Clone, Debug, Default)]
pub struct SectionPlan {
    /// Original-to-new offsets.
    pub map: OffsetMap,
    /// Padding bytes after each site (parallel to the sites; 0 for an unpadded site).
    pub pads: Vec<u8>,
    /// Whether each fixup is widened (parallel to the fixups).
    pub widened: Vec<bool>,
    /// Extra NOP insertions `(original offset, bytes)`, sorted, from special sections.
    pub extra: Vec<(u64, u64)>,
    /// Number of widened branches.
    pub widened_count: usize,
}

/// Growth of a widened fixup.
pub fn growth(kind: FixupKind) -> u64 {
    match kind {
        FixupKind::Jmp8 | FixupKind::JumpLabelNop2 => 3,
        FixupKind::Jcc8 => 4,
        FixupKind::Loop8 | FixupKind::Rel32 | FixupKind::RipDisp => 0,
    }
}

/// Whether the fixup has an 8-bit range.
pub fn is_short(kind: FixupKind) -> bool {
    matches!(
        kind,
        FixupKind::Jmp8 | FixupKind::Jcc8 | FixupKind::Loop8 | FixupKind::JumpLabelNop2
    )
}

/// Padding of a site that is not marked unpadded.
pub fn site_padding(site: &Site) -> u8 {
    annotations::site_len(site.kind, site.insn_len) - site.insn_len
}

/// New displacement of a fixup under `map` (`target - end_of_new_instruction`).
pub fn new_displacement(map: &OffsetMap, f: &Fixup, widened: bool) -> i64 {
    let len = u64::from(f.len) + if widened { growth(f.kind) } else { 0 };
    let new_end = map.map(f.offset) + len;
    map.map(f.target) as i64 - new_end as i64
}

fn build_map(
    sites: &[Site],
    pads: &[u8],
    fixups: &[Fixup],
    widened: &[bool],
    extra: &[(u64, u64)],
    buf: &mut Vec<(u64, u64)>,
) -> OffsetMap {
    buf.clear();
    for (s, &p) in sites.iter().zip(pads) {
        if p > 0 {
            buf.push((s.end(), u64::from(p)));
        }
    }
    for (f, &w) in fixups.iter().zip(widened) {
        if w {
            buf.push((f.end(), growth(f.kind)));
        }
    }
    buf.extend_from_slice(extra);
    buf.sort_unstable_by_key(|e| e.0);
    let mut map = OffsetMap::new();
    for &(at, n) in buf.iter() {
        map.insert(at, n);
    }
    map
}

/// Plans one section.
///
/// `unpadded[i]` keeps site `i` at its original length. `extra` must be sorted.
pub fn plan_section(
    name: &str,
    sites: &[Site],
    unpadded: &[bool],
    fixups: &[Fixup],
    extra: &[(u64, u64)],
) -> Result<SectionPlan> {
    let pads: Vec<u8> = sites
        .iter()
        .zip(unpadded)
        .map(|(s, &u)| if u { 0 } else { site_padding(s) })
        .collect();
    let mut widened = vec![false; fixups.len()];
    let short: Vec<usize> = fixups
        .iter()
        .enumerate()
        .filter(|(_, f)| is_short(f.kind))
        .map(|(i, _)| i)
        .collect();
    let mut buf = Vec::with_capacity(sites.len() + extra.len());
    let mut rounds = 0;
    loop {
        let map = build_map(sites, &pads, fixups, &widened, extra, &mut buf);
        let mut changed = false;
        for &i in &short {
            if widened[i] {
                continue;
            }
            let f = &fixups[i];
            let d = new_displacement(&map, f, false);
            if (-128..=127).contains(&d) {
                continue;
            }
            if f.kind == FixupKind::Loop8 {
                return Err(Error::at(
                    name,
                    f.offset,
                    ErrorKind::Layout(format!(
                        "loop/jrcxz to {:#x} would need displacement {d} after padding, and it has no rel32 form",
                        f.target
                    )),
                ));
            }
            widened[i] = true;
            changed = true;
        }
        rounds += 1;
        if !changed {
            let widened_count = widened.iter().filter(|&&w| w).count();
            return Ok(SectionPlan {
                map,
                pads,
                widened,
                extra: extra.to_vec(),
                widened_count,
            });
        }
        if rounds > fixups.len() + 2 {
            return Err(Error::in_section(
                name,
                ErrorKind::Internal("branch widening did not converge".into()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annotations::{Operands, SensitiveKind};

    fn site(offset: u64, len: u8, kind: SensitiveKind) -> Site {
        Site {
            offset,
            insn_len: len,
            kind,
            operands: Operands::NONE,
            pair: false,
        }
    }

    #[test]
    fn short_branch_over_sites_widens_and_neighbours_follow() {
        // jcc rel8 at 0 (2 bytes) to 0x70; 16 one-byte `cli` at 2..18, each padded by 7.
        let sites: Vec<Site> = (2..18).map(|o| site(o, 1, SensitiveKind::Cli)).collect();
        let fixups = [
            Fixup {
                offset: 0,
                len: 2,
                field: 1,
                kind: FixupKind::Jcc8,
                target: 0x70,
            },
            // a backward jmp rel8 at 0x70 to 0x20: distance grows by nothing (no site between)
            Fixup {
                offset: 0x70,
                len: 2,
                field: 1,
                kind: FixupKind::Jmp8,
                target: 0x20,
            },
        ];
        let un = vec![false; sites.len()];
        let p = plan_section(".text", &sites, &un, &fixups, &[]).unwrap();
        assert_eq!(p.widened, [true, false]);
        // 16 * 7 bytes of padding and 4 bytes of widening
        assert_eq!(p.map.total(), 16 * 7 + 4);
        assert_eq!(
            new_displacement(&p.map, &fixups[0], true),
            0x70 - 2 + 16 * 7
        );
    }

    #[test]
    fn loop_out_of_range_is_an_error_naming_the_place() {
        let sites: Vec<Site> = (2..40).map(|o| site(o, 1, SensitiveKind::Hlt)).collect();
        let fixups = [Fixup {
            offset: 0x50,
            len: 2,
            field: 1,
            kind: FixupKind::Loop8,
            target: 0,
        }];
        let e = plan_section(".text", &sites, &vec![false; sites.len()], &fixups, &[]).unwrap_err();
        assert!(e.to_string().contains(".text offset 0x50"), "{e}");
    }
}
