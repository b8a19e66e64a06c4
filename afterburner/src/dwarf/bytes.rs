//! Bounds-checked little-endian reading and LEB128 encoding.
//!
//! Every read returns a [`DwarfError`] naming the section and the offset where the data ran out
//! or made no sense; nothing here indexes a slice without checking.

use super::{DwarfError, Result};

/// A read position in one section's bytes.
#[derive(Clone)]
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    section: &'a str,
}

impl<'a> Cursor<'a> {
    /// A cursor at `pos` in `data`, which is the whole of section `section`.
    pub(super) fn at(data: &'a [u8], pos: usize, section: &'a str) -> Self {
        Cursor { data, pos, section }
    }

    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// An error at offset `at` of this section.
    pub(super) fn err_at(&self, at: usize, message: impl Into<String>) -> DwarfError {
        DwarfError::new(self.section, at as u64, message)
    }

    /// An error at the current position.
    pub(super) fn err(&self, message: impl Into<String>) -> DwarfError {
        self.err_at(self.pos, message)
    }

    /// The next `n` bytes.
    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| self.err(format!("truncated: {n} more bytes needed")))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned little-endian integer of `size` (1, 2, 4 or 8) bytes.
    pub(super) fn uint(&mut self, size: u8) -> Result<u64> {
        let at = self.pos;
        let b = self.bytes(usize::from(size))?;
        read_uint(b).ok_or_else(|| self.err_at(at, format!("unsupported field size {size}")))
    }

    /// An unsigned LEB128 number. Padded encodings (`0x80`-continued) are accepted; bits past
    /// 64 must be zero.
    pub(super) fn uleb(&mut self) -> Result<u64> {
        let start = self.pos;
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if shift < 64 {
                if shift > 0 && (bits >> (64 - shift)) != 0 {
                    return Err(self.err_at(start, "ULEB128 value does not fit in 64 bits"));
                }
                value |= bits << shift;
            } else if bits != 0 {
                return Err(self.err_at(start, "ULEB128 value does not fit in 64 bits"));
            }
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift = shift.saturating_add(7);
        }
    }

    /// A signed LEB128 number.
    pub(super) fn sleb(&mut self) -> Result<i64> {
        let start = self.pos;
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let byte = self.u8()?;
            if shift < 64 {
                value |= i64::from(byte & 0x7f) << shift;
            } else if byte & 0x7f != 0 && byte & 0x7f != 0x7f {
                return Err(self.err_at(start, "SLEB128 value does not fit in 64 bits"));
            }
            shift = shift.saturating_add(7);
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }

    /// A NUL-terminated string, returned without its NUL.
    pub(super) fn cstr(&mut self) -> Result<&'a [u8]> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err("unterminated string"))?;
        let s = &rest[..n];
        self.pos += n + 1;
        Ok(s)
    }
}

/// An unsigned little-endian integer from 1, 2, 4 or 8 bytes.
pub(super) fn read_uint(b: &[u8]) -> Option<u64> {
    match b.len() {
        1 | 2 | 4 | 8 => {
            let mut v = [0u8; 8];
            v[..b.len()].copy_from_slice(b);
            Some(u64::from_le_bytes(v))
        }
        _ => None,
    }
}

/// Number of bytes of the minimal ULEB128 encoding of `v`.
pub(super) fn uleb_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Appends `v` as ULEB128 of at least `min_len` bytes (padded with `0x80` continuation bytes,
/// which every DWARF consumer must accept).
pub(super) fn push_uleb(out: &mut Vec<u8>, mut v: u64, min_len: usize) {
    let len = uleb_len(v).max(min_len);
    for i in 0..len {
        let mut byte = v.to_le_bytes()[0] & 0x7f;
        v >>= 7;
        if i + 1 < len {
            byte |= 0x80;
        }
        out.push(byte);
    }
}

/// Number of bytes of the minimal SLEB128 encoding of `v`.
pub(super) fn sleb_len(mut v: i64) -> usize {
    let mut n = 1;
    loop {
        let byte = v & 0x7f;
        v >>= 7;
        if (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0) {
            return n;
        }
        n += 1;
    }
}

/// Appends `v` as SLEB128 of at least `min_len` bytes (sign-extended padding).
pub(super) fn push_sleb(out: &mut Vec<u8>, mut v: i64, min_len: usize) {
    let len = sleb_len(v).max(min_len);
    for i in 0..len {
        let mut byte = v.to_le_bytes()[0] & 0x7f;
        v >>= 7;
        if i + 1 < len {
            byte |= 0x80;
        }
        out.push(byte);
    }
}

/// `v` as `size` little-endian bytes, or `None` when it does not fit.
pub(super) fn uint_bytes(v: u64, size: usize) -> Option<Vec<u8>> {
    if size < 8 && v >> (size * 8) != 0 {
        return None;
    }
    v.to_le_bytes().get(..size).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_round_trips_with_padding() {
        for v in [0u64, 1, 0x7f, 0x80, 0x3fff, 0x4000, u64::MAX] {
            for min in [0, 1, 3, 11] {
                let mut out = Vec::new();
                push_uleb(&mut out, v, min);
                assert_eq!(out.len(), uleb_len(v).max(min));
                let mut c = Cursor::at(&out, 0, "t");
                assert_eq!(c.uleb().unwrap(), v);
                assert_eq!(c.pos(), out.len());
            }
        }
        for v in [0i64, 1, -1, 63, 64, -64, -65, i64::MIN, i64::MAX] {
            for min in [0, 2, 12] {
                let mut out = Vec::new();
                push_sleb(&mut out, v, min);
                assert_eq!(out.len(), sleb_len(v).max(min));
                let mut c = Cursor::at(&out, 0, "t");
                assert_eq!(c.sleb().unwrap(), v, "{v} {min} {out:x?}");
            }
        }
        // 11-byte ULEB with high bits set overflows
        let bad = [0xffu8; 10]
            .iter()
            .copied()
            .chain([0x7f])
            .collect::<Vec<_>>();
        assert!(Cursor::at(&bad, 0, "t").uleb().is_err());
        assert!(Cursor::at(&[0x80], 0, "t").uleb().is_err());
        assert_eq!(uint_bytes(0x1_0000, 2), None);
        assert_eq!(uint_bytes(0xffff, 2), Some(vec![0xff, 0xff]));
    }
}
