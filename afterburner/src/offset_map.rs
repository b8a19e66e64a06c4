//! The monotone map from original to new offsets within one section.
//!
//! Burning inserts bytes: padding after each sensitive instruction, and growth where a short
//! branch is widened. An insertion of `n` bytes at original offset `p` moves every original
//! offset `x >= p` by `n`: the inserted bytes come *before* the byte at `p`. Padding after a
//! site ending at `e` is an insertion at `e`, so a label right after a site lands after its
//! padding, and a region `[start, end)` that ends with a site grows to cover the padding.

/// Original-to-new offset map of one section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetMap {
    /// `(p, total)`: insertion points in increasing order of `p`, with the total number of bytes
    /// inserted at points `<= p`.
    points: Vec<(u64, u64)>,
}

impl OffsetMap {
    /// The identity map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an insertion of `n` bytes at original offset `at`.
    ///
    /// Insertions must be recorded in non-decreasing order of `at`; insertions at the same
    /// offset accumulate.
    ///
    /// # Panics
    /// If `at` is smaller than a previously recorded point (a planning bug, not input).
    pub fn insert(&mut self, at: u64, n: u64) {
        if n == 0 {
            return;
        }
        match self.points.last_mut() {
            Some((p, total)) if *p == at => *total += n,
            Some((p, total)) => {
                assert!(*p < at, "insertions out of order: {at:#x} after {p:#x}");
                let t = *total + n;
                self.points.push((at, t));
            }
            None => self.points.push((at, n)),
        }
    }

    /// New offset of original offset `x`.
    pub fn map(&self, x: u64) -> u64 {
        x + self.delta(x)
    }

    /// Bytes inserted at points `<= x`.
    pub fn delta(&self, x: u64) -> u64 {
        if self.points.first().is_none_or(|&(p, _)| x < p) {
            return 0;
        }
        let i = self.points.partition_point(|&(p, _)| p <= x);
        if i == 0 {
            0
        } else {
            self.points[i - 1].1
        }
    }

    /// [`Self::map`] for offsets looked up mostly in increasing order: `hint` (any value to
    /// start with) keeps the position of the previous lookup.
    pub fn map_near(&self, x: u64, hint: &mut usize) -> u64 {
        let p = &self.points;
        let mut i = (*hint).min(p.len());
        if i > 0 && p[i - 1].0 > x {
            i = p.partition_point(|&(q, _)| q <= x);
        } else {
            let mut steps = 0;
            while i < p.len() && p[i].0 <= x {
                i += 1;
                steps += 1;
                if steps == 8 {
                    i += p[i..].partition_point(|&(q, _)| q <= x);
                    break;
                }
            }
        }
        *hint = i;
        x + if i == 0 { 0 } else { p[i - 1].1 }
    }

    /// New offset of original offset `x`, placed *before* any bytes inserted exactly at `x`
    /// (for an end that must not swallow the following insertion).
    pub fn map_before(&self, x: u64) -> u64 {
        x + self.delta_before(x)
    }

    /// Bytes inserted at points `< x`.
    pub fn delta_before(&self, x: u64) -> u64 {
        let i = self.points.partition_point(|&(p, _)| p < x);
        if i == 0 {
            0
        } else {
            self.points[i - 1].1
        }
    }

    /// Maps a signed offset as a relocation addend may hold it; negative values (before the
    /// section start) and values past the end are mapped by the nearest rule (unchanged below
    /// zero, shifted by the total above).
    pub fn map_signed(&self, x: i64) -> i64 {
        match u64::try_from(x) {
            Ok(u) => {
                let d = self.delta(u);
                x.saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
            }
            Err(_) => x,
        }
    }

    /// New addend of a relocation against a symbol at original offset `sym_value` in this
    /// section whose target is `sym_value + addend (+ bias)`: the new target is
    /// `map(sym_value + addend + bias)`, the symbol itself moves to `map(sym_value)`, so the
    /// new addend is the difference minus `bias`.
    ///
    /// `bias` is 0 for data relocations (the target is `S + A`) and `insn_end - r_offset` for
    /// PC-relative relocations inside an instruction (the target is `S + A + insn_end - P`).
    /// Returns `None` when the arithmetic leaves `i64`.
    pub fn map_addend(&self, sym_value: u64, addend: i64, bias: i64) -> Option<i64> {
        let target = i64::try_from(sym_value)
            .ok()?
            .checked_add(addend)?
            .checked_add(bias)?;
        let new_target = self.map_signed(target);
        let new_sym = i64::try_from(self.map(sym_value)).ok()?;
        new_target.checked_sub(new_sym)?.checked_sub(bias)
    }

    /// [`Self::map_addend`] for targets looked up mostly in increasing order ([`Self::map_near`]).
    pub fn map_addend_near(
        &self,
        sym_value: u64,
        addend: i64,
        bias: i64,
        hint: &mut usize,
    ) -> Option<i64> {
        let target = i64::try_from(sym_value)
            .ok()?
            .checked_add(addend)?
            .checked_add(bias)?;
        let new_target = match u64::try_from(target) {
            Ok(u) => {
                let d = self.map_near(u, hint) - u;
                target.saturating_add(i64::try_from(d).unwrap_or(i64::MAX))
            }
            Err(_) => target,
        };
        let new_sym = i64::try_from(self.map(sym_value)).ok()?;
        new_target.checked_sub(new_sym)?.checked_sub(bias)
    }

    /// Total bytes inserted.
    pub fn total(&self) -> u64 {
        self.points.last().map_or(0, |&(_, t)| t)
    }

    /// Whether nothing was inserted.
    pub fn is_identity(&self) -> bool {
        self.points.is_empty()
    }

    /// The insertion points `(original offset, bytes inserted there)`.
    pub fn insertions(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut prev = 0;
        self.points.iter().map(move |&(p, t)| {
            let n = t - prev;
            prev = t;
            (p, n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insertions_move_later_offsets() {
        let mut m = OffsetMap::new();
        m.insert(1, 7); // cli at 0 padded to 8
        m.insert(10, 4); // short jcc at 8 widened: end 10 grows by 4
        m.insert(10, 2);
        assert_eq!(m.map(0), 0);
        assert_eq!(m.map(1), 8);
        assert_eq!(m.map_before(1), 1);
        assert_eq!(m.map(9), 16);
        assert_eq!(m.map(10), 23);
        assert_eq!(m.map_before(10), 17);
        assert_eq!(m.total(), 13);
        assert_eq!(m.insertions().collect::<Vec<_>>(), [(1, 7), (10, 6)]);
        let mut hint = 0;
        for x in [0, 1, 9, 10, 11, 3, 0, 12, 10, 1, 0] {
            assert_eq!(m.map_near(x, &mut hint), m.map(x), "{x}");
        }
        let mut many = OffsetMap::new();
        for k in 1..100 {
            many.insert(k * 10, 1);
        }
        for x in [0, 5, 10, 11, 500, 995, 990, 1500, 2, 320] {
            assert_eq!(many.map_near(x, &mut hint), many.map(x), "{x}");
        }
        for (v, a, b) in [(0, 9, 0), (0, 6, 4), (9, 1, 0), (3, -7, 0), (0, 1 << 40, 0)] {
            let mut hint = 5;
            assert_eq!(m.map_addend_near(v, a, b, &mut hint), m.map_addend(v, a, b));
        }
        assert_eq!(m.map_signed(-4), -4);
        assert_eq!(m.map_signed(12), 25);
        assert!(OffsetMap::new().is_identity());
        // section symbol (value 0): a jump-table entry `.quad .text+9`
        assert_eq!(m.map_addend(0, 9, 0), Some(16));
        // call to .text+10 from a rel32 at offset 3 ending at 7: addend 10 - 4 = 6, bias 4
        assert_eq!(m.map_addend(0, 6, 4), Some(19));
        // function symbol at 9 (moves to 16), addend 1 → target 10 (moves to 23)
        assert_eq!(m.map_addend(9, 1, 0), Some(7));
    }
}
