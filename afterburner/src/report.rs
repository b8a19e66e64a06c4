//! Reports: what `burn` did to an object, and totals over many objects (text and JSON).

use annotations::SensitiveKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What happened to one object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Rewritten with padding and a `.afterburn` section.
    #[default]
    Burnt,
    /// Already has `.afterburn`: left unchanged.
    AlreadyBurnt,
    /// Has `.afterburn_noannotate`: left unchanged.
    NoAnnotate,
}

/// Per-object report of `burn`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Outcome.
    pub status: Status,
    /// Sites per kind name.
    pub sites: BTreeMap<&'static str, u64>,
    /// Total sites.
    pub total_sites: u64,
    /// Sites left unpadded (`FLAG_UNPADDED`).
    pub unpadded_sites: u64,
    /// Sites in `.altinstr_replacement` (`FLAG_ALTINSTR`).
    pub altinstr_sites: u64,
    /// Bytes added to code sections (padding, widening, alternative regions).
    pub bytes_added: u64,
    /// Short branches widened (including 2-byte jump-label NOPs).
    pub widened_branches: u64,
    /// NOP bytes added at the end of `.altinstructions` original regions.
    pub alt_region_padding: u64,
    /// Code sections decoded.
    pub code_sections: u64,
    /// Instructions decoded.
    pub instructions: u64,
    /// Warnings worth a user's attention (stale DWARF, unpadded sites and why).
    pub notes: Vec<String>,
}

impl Report {
    /// Counts one site of `kind`.
    pub fn add_site(&mut self, kind: SensitiveKind) {
        *self.sites.entry(kind.name()).or_default() += 1;
        self.total_sites += 1;
    }
}

/// Totals over many objects.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Objects given.
    pub objects: u64,
    /// Objects rewritten.
    pub burnt: u64,
    /// Objects left unchanged (already burnt or opted out).
    pub unchanged: u64,
    /// Objects that failed.
    pub failed: u64,
    /// Sites per kind name.
    pub sites: BTreeMap<&'static str, u64>,
    /// Total sites.
    pub total_sites: u64,
    /// Unpadded sites.
    pub unpadded_sites: u64,
    /// Sites in `.altinstr_replacement`.
    pub altinstr_sites: u64,
    /// Bytes added.
    pub bytes_added: u64,
    /// Widened branches.
    pub widened_branches: u64,
    /// Instructions decoded.
    pub instructions: u64,
}

impl Summary {
    /// Adds one object's report.
    pub fn add(&mut self, r: &Report) {
        self.objects += 1;
        match r.status {
            Status::Burnt => self.burnt += 1,
            _ => self.unchanged += 1,
        }
        for (k, n) in &r.sites {
            *self.sites.entry(k).or_default() += n;
        }
        self.total_sites += r.total_sites;
        self.unpadded_sites += r.unpadded_sites;
        self.altinstr_sites += r.altinstr_sites;
        self.bytes_added += r.bytes_added;
        self.widened_branches += r.widened_branches;
        self.instructions += r.instructions;
    }

    /// Counts a failed object.
    pub fn add_failure(&mut self) {
        self.objects += 1;
        self.failed += 1;
    }

    /// Human-readable text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} object(s): {} burnt, {} unchanged, {} failed",
            self.objects, self.burnt, self.unchanged, self.failed
        );
        let _ = writeln!(
            s,
            "{} site(s) ({} unpadded, {} in .altinstr_replacement), {} bytes added, {} branch(es) widened",
            self.total_sites, self.unpadded_sites, self.altinstr_sites, self.bytes_added, self.widened_branches
        );
        for (k, n) in &self.sites {
            let _ = writeln!(s, "  {k:<12} {n}");
        }
        s
    }
}
