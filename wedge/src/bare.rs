//! The bare backend: rewrites nothing. It checks that every site still holds its original
//! instruction(s) of the annotated kind followed by exactly the padding NOPs, so the burnt
//! kernel runs as the native one did.

use crate::original;
use crate::patch::{Backend, PatchError, Rewrite};
use crate::sites::Site;

/// Keeps every site; fails on a site that is not its original instruction and padding.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bare;

impl Backend for Bare {
    fn name(&self) -> &'static str {
        "bare"
    }

    fn rewrite(&mut self, site: &Site, bytes: &[u8]) -> Result<Rewrite, PatchError> {
        original::decode(site, bytes).map_err(|why| PatchError::NotOriginal {
            site: Box::new(*site),
            why,
        })?;
        Ok(Rewrite::Keep)
    }
}
