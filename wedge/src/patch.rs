//! The patcher: one [`Backend`] trait that every backend (bare, kvm, later bt) implements, and
//! [`patch`], which asks the backend for every site's replacement and writes them.
//!
//! All replacements are computed before anything is written, so an error (a replacement that
//! does not fit, a site that does not hold its original instruction, a kind the backend cannot
//! handle) leaves the image untouched and names the site.

use std::collections::BTreeMap;

use annotations::{nop, SensitiveKind};

use crate::image::{Image, ImageError};
use crate::sites::Site;

/// What a backend does with one site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// Leave the site's bytes as they are.
    Keep,
    /// Write these bytes at the site's start and fill the rest of the site with the
    /// recommended NOPs. Never longer than the site.
    Replace(Vec<u8>),
}

/// Why a kernel could not be patched. Every variant names the site.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The replacement is longer than the site (instruction + padding).
    #[error("{site}: the {backend} backend's replacement needs {need} bytes, the site has {have}")]
    DoesNotFit {
        /// The backend.
        backend: &'static str,
        /// The site.
        site: Box<Site>,
        /// Bytes the replacement needs.
        need: usize,
        /// Bytes the site has.
        have: u8,
    },
    /// The site does not hold its original instruction and padding.
    #[error("{site}: {why}")]
    NotOriginal {
        /// The site.
        site: Box<Site>,
        /// What is there instead.
        why: String,
    },
    /// The backend has no replacement for this form of the instruction.
    #[error("{site}: the {backend} backend cannot rewrite `{insn}`: {why}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The site.
        site: Box<Site>,
        /// The instruction (GNU syntax).
        insn: String,
        /// Why not.
        why: String,
    },
    /// The site is not inside the image.
    #[error("{site}: {source}")]
    Image {
        /// The site.
        site: Box<Site>,
        /// The image's error.
        source: ImageError,
    },
    /// The backend ran out of room for code it generates (e.g. kvm thunks).
    #[error("{site}: {why}")]
    Resources {
        /// The site.
        site: Box<Site>,
        /// What ran out.
        why: String,
    },
}

/// A backend: decides the replacement of each site.
pub trait Backend {
    /// The backend's name (`bare`, `kvm`, `bt`).
    fn name(&self) -> &'static str;

    /// The replacement for `site`, whose current bytes are `bytes` (`site_len` of them).
    fn rewrite(&mut self, site: &Site, bytes: &[u8]) -> Result<Rewrite, PatchError>;
}

/// What [`patch`] did, per kind: (sites, sites rewritten).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchReport {
    /// Sites seen.
    pub sites: usize,
    /// Sites whose bytes were replaced.
    pub rewritten: usize,
    /// Per kind: (sites, rewritten).
    pub by_kind: BTreeMap<SensitiveKind, (usize, usize)>,
}

/// Rewrites every site of `image` for `backend`. Nothing is written unless every site's
/// replacement is known and fits.
pub fn patch(
    image: &mut dyn Image,
    sites: &[Site],
    backend: &mut dyn Backend,
) -> Result<PatchReport, PatchError> {
    let mut report = PatchReport::default();
    let mut writes = Vec::new();
    for site in sites {
        let bytes = image
            .read(site.addr, usize::from(site.site_len))
            .map_err(|source| PatchError::Image {
                site: Box::new(*site),
                source,
            })?;
        let rewrite = backend.rewrite(site, &bytes)?;
        let entry = report.by_kind.entry(site.kind).or_default();
        entry.0 += 1;
        report.sites += 1;
        if let Rewrite::Replace(code) = rewrite {
            if code.len() > usize::from(site.site_len) {
                return Err(PatchError::DoesNotFit {
                    backend: backend.name(),
                    site: Box::new(*site),
                    need: code.len(),
                    have: site.site_len,
                });
            }
            let mut full = code;
            let used = full.len();
            full.resize(usize::from(site.site_len), 0);
            nop::fill(&mut full[used..]);
            entry.1 += 1;
            report.rewritten += 1;
            writes.push((*site, full));
        }
    }
    for (site, bytes) in writes {
        image
            .write(site.addr, &bytes)
            .map_err(|source| PatchError::Image {
                site: Box::new(site),
                source,
            })?;
    }
    Ok(report)
}
