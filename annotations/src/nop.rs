//! The NOP forms that fill a site after its original instruction.
//!
//! Padding of `n` bytes is the greedy sequence of the recommended multi-byte NOPs of the
//! Intel SDM (Vol. 2B, "NOP"), longest first, at most [`MAX_NOP`] bytes each. [`fill`] writes
//! it and [`is_padding`] checks it, so a verifier can demand exactly these bytes.

/// Longest single NOP used.
pub const MAX_NOP: usize = 9;

/// The recommended NOP of each length 1..=9 (index = length - 1).
pub const NOPS: [&[u8]; MAX_NOP] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// Fills `out` with padding NOPs.
pub fn fill(out: &mut [u8]) {
    let mut rest = out;
    while !rest.is_empty() {
        let n = rest.len().min(MAX_NOP);
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(NOPS[n - 1]);
        rest = tail;
    }
}

/// Whether `bytes` is exactly what [`fill`] writes for its length.
pub fn is_padding(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rest.len().min(MAX_NOP);
        if &rest[..n] != NOPS[n - 1] {
            return false;
        }
        rest = &rest[n..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fill_then_check() {
        for n in 0..40 {
            let mut b = [0u8; 40];
            fill(&mut b[..n]);
            assert!(is_padding(&b[..n]));
            if n > 0 {
                b[n - 1] ^= 0x10;
                assert!(!is_padding(&b[..n]), "corrupt padding of {n} accepted");
            }
        }
    }
}
