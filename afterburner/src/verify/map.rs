//! The offset map the verifier derives itself, by walking original and burnt code in lockstep.
//!
//! It is a list of anchors `(original offset, burnt offset)`, one per original instruction
//! start plus the section end. An offset `x` between anchors maps to `burnt(a) + (x - a)` for
//! the last anchor `a <= x`: an instruction's interior moves with its start. This is the same
//! rule as [`crate::offset_map::OffsetMap`] (insertions happen only at instruction ends), but
//! it is computed from the bytes, not taken from the burner, and it can also describe an
//! alignment run that shrank (`--realign`).

/// Original-to-burnt offset map of one section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SectionMap {
    anchors: Vec<(u64, u64)>,
    orig_size: u64,
    burnt_size: u64,
}

impl SectionMap {
    /// The identity map of a section of `size` bytes (sections that do not move).
    pub fn identity(size: u64) -> Self {
        SectionMap {
            anchors: Vec::new(),
            orig_size: size,
            burnt_size: size,
        }
    }

    /// An empty map, to be filled with [`SectionMap::push`] in increasing original order.
    pub(crate) fn building(orig_size: u64) -> Self {
        SectionMap {
            anchors: Vec::new(),
            orig_size,
            burnt_size: orig_size,
        }
    }

    /// Adds the anchor `orig -> burnt`. An anchor at the same original offset as the last one
    /// replaces it (the later, more precise one wins).
    pub(crate) fn push(&mut self, orig: u64, burnt: u64) {
        if let Some(last) = self.anchors.last_mut() {
            if last.0 == orig {
                last.1 = burnt;
                return;
            }
            debug_assert!(last.0 < orig, "anchors out of order");
        }
        self.anchors.push((orig, burnt));
    }

    /// Sets the burnt section size (the image of the original end).
    pub(crate) fn finish(&mut self, burnt_size: u64) {
        self.burnt_size = burnt_size;
    }

    /// Burnt offset of original offset `x`. Offsets past the original end keep their distance
    /// to the end; offsets below the first anchor are unchanged.
    pub fn map(&self, x: u64) -> u64 {
        if x >= self.orig_size {
            return x - self.orig_size + self.burnt_size;
        }
        let i = self.anchors.partition_point(|&(a, _)| a <= x);
        if i == 0 {
            x
        } else {
            let (a, b) = self.anchors[i - 1];
            b + (x - a)
        }
    }

    /// [`SectionMap::map`] for signed offsets (relocation addends may point before a section).
    pub fn map_signed(&self, x: i64) -> i64 {
        match u64::try_from(x) {
            Ok(u) => i64::try_from(self.map(u)).unwrap_or(i64::MAX),
            Err(_) => x,
        }
    }

    /// Whether `x` is an anchor (an original instruction start or the section end).
    pub fn is_anchor(&self, x: u64) -> bool {
        x == self.orig_size || self.anchors.binary_search_by_key(&x, |&(a, _)| a).is_ok()
    }

    /// Original size.
    pub fn orig_size(&self) -> u64 {
        self.orig_size
    }

    /// Burnt size.
    pub fn burnt_size(&self) -> u64 {
        self.burnt_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_map_interiors_and_ends() {
        let mut m = SectionMap::building(20);
        m.push(0, 0); // cli (site of 8)
        m.push(1, 8);
        m.push(3, 10); // short jcc widened by 4
        m.push(5, 16);
        m.finish(31);
        assert_eq!(m.map(0), 0);
        assert_eq!(m.map(1), 8);
        assert_eq!(m.map(2), 9);
        assert_eq!(m.map(4), 11);
        assert_eq!(m.map(19), 30);
        assert_eq!(m.map(20), 31);
        assert_eq!(m.map(25), 36);
        assert_eq!(m.map_signed(-4), -4);
        assert!(m.is_anchor(3) && !m.is_anchor(4) && m.is_anchor(20));
        assert_eq!(SectionMap::identity(8).map(5), 5);
    }
}
