//! KVM binary statistics (Documentation/virt/kvm/api.rst, "KVM_GET_STATS_FD").
//!
//! A stats fd is a read-only file laid out as:
//!
//! ```text
//! header      struct kvm_stats_header { u32 flags, name_size, num_desc,
//!                                       id_offset, desc_offset, data_offset }  (at offset 0)
//! id string   name_size bytes at id_offset
//! descriptors num_desc x (struct kvm_stats_desc { u32 flags; s16 exponent; u16 size;
//!                                                u32 offset; u32 bucket_size; }
//!                         + name_size bytes of NUL-padded name) at desc_offset
//! data        descriptor i's `size` u64 values at data_offset + desc[i].offset
//! ```
//!
//! The fd's contents come from the kernel, but they are parsed like any untrusted input: every
//! offset and size is bounds-checked, so a truncated or hostile layout is an error, never a panic
//! or a huge allocation. `read_stats` reads through the small `ReadAt` trait so the parser can be
//! tested on byte buffers; `stats_fd` is the one wrapper around the ioctl.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Size of `struct kvm_stats_header`.
pub const HEADER_SIZE: usize = 24;
/// Size of `struct kvm_stats_desc` without its name.
pub const DESC_FIXED_SIZE: usize = 16;
/// Longest descriptor name accepted (the kernel uses 48, `KVM_STATS_NAME_SIZE`).
pub const MAX_NAME_SIZE: u32 = 4096;
/// Most descriptors accepted.
pub const MAX_DESCRIPTORS: u32 = 65536;
/// Most values in one statistic (histograms have one per bucket).
pub const MAX_VALUES_PER_STAT: u16 = 4096;

/// `KVM_GET_STATS_FD` = `_IO(KVMIO, 0xce)`; kvm-ioctls has no wrapper for it.
const KVM_GET_STATS_FD: libc::Ioctl = ((kvm_bindings::KVMIO as libc::Ioctl) << 8) | 0xce;

/// A stats layout the loader refuses.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// Reading the fd failed, or a read ran past its end.
    #[error("reading the stats {what} at offset {offset:#x} (+{len:#x} bytes): {source}")]
    Read {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// How much.
        len: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// A layout value out of the accepted range.
    #[error("stats header: {0}")]
    Header(String),
    /// A descriptor out of the accepted range.
    #[error("stats descriptor {index}: {problem}")]
    Descriptor {
        /// Index of the descriptor.
        index: u32,
        /// What is wrong.
        problem: String,
    },
    /// `KVM_GET_STATS_FD` failed.
    #[error("KVM_GET_STATS_FD: {0}")]
    Ioctl(io::Error),
}

/// Positional reads, as `pread(2)` does them.
pub trait ReadAt {
    /// Fills `buf` from `offset`, or fails (`UnexpectedEof` when the source ends first).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let eof = || io::Error::new(io::ErrorKind::UnexpectedEof, "past the end of the buffer");
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        buf.copy_from_slice(self.get(start..end).ok_or_else(eof)?);
        Ok(())
    }
}

/// `struct kvm_stats_header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatsHeader {
    /// Reserved flags.
    pub flags: u32,
    /// Size of the id string and of every descriptor's name field.
    pub name_size: u32,
    /// Number of descriptors.
    pub num_desc: u32,
    /// Offset of the id string.
    pub id_offset: u32,
    /// Offset of the descriptor array.
    pub desc_offset: u32,
    /// Offset of the data block.
    pub data_offset: u32,
}

/// The kind of a statistic (bits 0..4 of its flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatType {
    /// A counter that only grows.
    Cumulative,
    /// A current value.
    Instant,
    /// A highest value seen.
    Peak,
    /// A histogram with equal-width buckets.
    LinearHistogram,
    /// A histogram with power-of-two buckets.
    LogHistogram,
    /// A type this loader does not know.
    Other(u32),
}

impl StatType {
    fn from_flags(flags: u32) -> Self {
        match flags & 0xf {
            0 => StatType::Cumulative,
            1 => StatType::Instant,
            2 => StatType::Peak,
            3 => StatType::LinearHistogram,
            4 => StatType::LogHistogram,
            t => StatType::Other(t),
        }
    }
}

/// One statistic: its descriptor and its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// The name (e.g. `exits`).
    pub name: String,
    /// The raw descriptor flags (type, unit, base).
    pub flags: u32,
    /// The unit exponent.
    pub exponent: i16,
    /// Histogram bucket size (linear histograms only).
    pub bucket_size: u32,
    /// The values: one for a scalar, one per bucket for a histogram.
    pub values: Vec<u64>,
}

impl Stat {
    /// The statistic's type.
    pub fn stat_type(&self) -> StatType {
        StatType::from_flags(self.flags)
    }

    /// The value of a scalar statistic (the first value).
    pub fn value(&self) -> Option<u64> {
        self.values.first().copied()
    }
}

fn read<R: ReadAt + ?Sized>(
    src: &R,
    what: &'static str,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, StatsError> {
    let mut buf = vec![0u8; len];
    src.read_exact_at(&mut buf, offset)
        .map_err(|source| StatsError::Read {
            what,
            offset,
            len: len as u64,
            source,
        })?;
    Ok(buf)
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Parses the 24-byte header.
pub fn parse_header(b: &[u8; HEADER_SIZE]) -> Result<StatsHeader, StatsError> {
    let h = StatsHeader {
        flags: u32_le(b, 0),
        name_size: u32_le(b, 4),
        num_desc: u32_le(b, 8),
        id_offset: u32_le(b, 12),
        desc_offset: u32_le(b, 16),
        data_offset: u32_le(b, 20),
    };
    if h.name_size == 0 || h.name_size > MAX_NAME_SIZE {
        return Err(StatsError::Header(format!(
            "name_size {} is outside 1..={MAX_NAME_SIZE}",
            h.name_size
        )));
    }
    if h.num_desc > MAX_DESCRIPTORS {
        return Err(StatsError::Header(format!(
            "num_desc {} is above {MAX_DESCRIPTORS}",
            h.num_desc
        )));
    }
    Ok(h)
}

/// Reads every statistic: header, id, descriptors and data.
pub fn read_stats<R: ReadAt + ?Sized>(src: &R) -> Result<(String, Vec<Stat>), StatsError> {
    let raw = read(src, "header", 0, HEADER_SIZE)?;
    let mut hb = [0u8; HEADER_SIZE];
    hb.copy_from_slice(&raw);
    let h = parse_header(&hb)?;
    let name_size =
        usize::try_from(h.name_size).map_err(|_| StatsError::Header("name_size".into()))?;
    let id = read(src, "id", u64::from(h.id_offset), name_size)?;
    let id = c_string(&id);

    let desc_size = DESC_FIXED_SIZE + name_size;
    let mut stats = Vec::new();
    // One descriptor at a time: a hostile num_desc costs failed reads, not a huge allocation.
    for i in 0..h.num_desc {
        let at = u64::from(h.desc_offset) + u64::from(i) * desc_size as u64;
        let d = read(src, "descriptor", at, desc_size)?;
        let index = i;
        let flags = u32_le(&d, 0);
        let exponent = i16::from_le_bytes([d[4], d[5]]);
        let size = u16::from_le_bytes([d[6], d[7]]);
        let offset = u32_le(&d, 8);
        let bucket_size = u32_le(&d, 12);
        let name = c_string(&d[DESC_FIXED_SIZE..]);
        let bad = |problem: String| StatsError::Descriptor { index, problem };
        if name.is_empty() {
            return Err(bad("empty name".into()));
        }
        if size == 0 || size > MAX_VALUES_PER_STAT {
            return Err(bad(format!(
                "{name}: size {size} is outside 1..={MAX_VALUES_PER_STAT}"
            )));
        }
        let at = u64::from(h.data_offset) + u64::from(offset);
        let bytes = read(src, "data", at, usize::from(size) * 8)?;
        let values = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect();
        stats.push(Stat {
            name,
            flags,
            exponent,
            bucket_size,
            values,
        });
    }
    Ok((id, stats))
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Opens the binary stats fd of a vCPU or VM (`KVM_GET_STATS_FD`).
///
/// # Arguments
///
/// * `fd` - a KVM vCPU or VM file descriptor.
///
/// # Example
///
/// ```no_run
/// # use kvm_ioctls::Kvm;
/// let kvm = Kvm::new().unwrap();
/// let vm = kvm.create_vm().unwrap();
/// let vcpu = vm.create_vcpu(0).unwrap();
/// let stats = loader::stats::stats_fd(&vcpu).unwrap();
/// let (_id, all) = loader::stats::read_stats(&stats).unwrap();
/// assert!(all.iter().any(|s| s.name == "exits"));
/// ```
pub fn stats_fd(fd: &impl AsRawFd) -> Result<File, StatsError> {
    // SAFETY: KVM_GET_STATS_FD takes no argument and only returns a new file descriptor (or
    // -1); `fd` is a live descriptor borrowed for the call. A non-negative result is a fresh
    // descriptor nobody else owns, so handing it to `OwnedFd` (which closes it once) is sound.
    let file = unsafe {
        let ret = libc::ioctl(fd.as_raw_fd(), KVM_GET_STATS_FD, 0);
        if ret < 0 {
            return Err(StatsError::Ioctl(io::Error::last_os_error()));
        }
        OwnedFd::from_raw_fd(ret)
    };
    Ok(File::from(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: usize = 48;

    /// A stats file like the kernel's: header, id, descriptors, data.
    fn build(stats: &[(&str, u32, u16, &[u64])]) -> Vec<u8> {
        let desc_offset = HEADER_SIZE + NAME;
        let data_offset = desc_offset + stats.len() * (DESC_FIXED_SIZE + NAME);
        let mut f = Vec::new();
        for v in [
            0u32,
            NAME as u32,
            stats.len() as u32,
            HEADER_SIZE as u32,
            desc_offset as u32,
            data_offset as u32,
        ] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        let mut id = b"kvm-1234/vcpu_0".to_vec();
        id.resize(NAME, 0);
        f.extend_from_slice(&id);
        let mut data = Vec::new();
        for (name, flags, size, values) in stats {
            f.extend_from_slice(&flags.to_le_bytes());
            f.extend_from_slice(&0i16.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&((data.len()) as u32).to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes());
            let mut n = name.as_bytes().to_vec();
            n.resize(NAME, 0);
            f.extend_from_slice(&n);
            for v in *values {
                data.extend_from_slice(&v.to_le_bytes());
            }
        }
        f.extend_from_slice(&data);
        f
    }

    #[test]
    fn parses_scalars_and_histograms() {
        let f = build(&[
            ("exits", 0, 1, &[1234]),
            ("io_exits", 0, 1, &[99]),
            ("halt_wait_hist", 4, 4, &[1, 2, 3, 4]),
            ("guest_mode", 1 | (4 << 4), 1, &[0]),
        ]);
        let (id, s) = read_stats(&f[..]).unwrap();
        assert_eq!(id, "kvm-1234/vcpu_0");
        assert_eq!(s.len(), 4);
        assert_eq!((s[0].name.as_str(), s[0].value()), ("exits", Some(1234)));
        assert_eq!(s[0].stat_type(), StatType::Cumulative);
        assert_eq!((s[1].name.as_str(), s[1].value()), ("io_exits", Some(99)));
        assert_eq!(s[2].values, vec![1, 2, 3, 4]);
        assert_eq!(s[2].stat_type(), StatType::LogHistogram);
        assert_eq!(s[3].stat_type(), StatType::Instant);
    }

    #[test]
    fn empty_descriptor_list() {
        let (_, s) = read_stats(&build(&[])[..]).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn truncated_files_are_errors_at_every_cut() {
        let f = build(&[("exits", 0, 1, &[7]), ("hist", 3, 3, &[1, 2, 3])]);
        for cut in 0..f.len() {
            let e = read_stats(&f[..cut]).unwrap_err();
            assert!(matches!(e, StatsError::Read { .. }), "cut {cut}: {e}");
        }
        assert!(read_stats(&f[..]).is_ok());
    }

    #[test]
    fn hostile_headers() {
        let mut f = build(&[("exits", 0, 1, &[7])]);
        f[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert!(read_stats(&f[..])
            .unwrap_err()
            .to_string()
            .contains("name_size 0"));
        f[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_stats(&f[..])
            .unwrap_err()
            .to_string()
            .contains("name_size"));
        let mut f = build(&[("exits", 0, 1, &[7])]);
        f[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_stats(&f[..])
            .unwrap_err()
            .to_string()
            .contains("num_desc"));
        // Offsets near u32::MAX do not wrap.
        let mut f = build(&[("exits", 0, 1, &[7])]);
        f[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_stats(&f[..]),
            Err(StatsError::Read { what: "data", .. })
        ));
        let mut f = build(&[("exits", 0, 1, &[7])]);
        f[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_stats(&f[..]),
            Err(StatsError::Read {
                what: "descriptor",
                ..
            })
        ));
    }

    #[test]
    fn hostile_descriptors() {
        let desc = HEADER_SIZE + NAME;
        let mut f = build(&[("exits", 0, 1, &[7])]);
        f[desc + 6..desc + 8].copy_from_slice(&0u16.to_le_bytes());
        assert!(read_stats(&f[..])
            .unwrap_err()
            .to_string()
            .contains("size 0"));
        f[desc + 6..desc + 8].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(read_stats(&f[..])
            .unwrap_err()
            .to_string()
            .contains("size 65535"));
        let mut f = build(&[("exits", 0, 1, &[7])]);
        f[desc + 8..desc + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_stats(&f[..]),
            Err(StatsError::Read { what: "data", .. })
        ));
        let mut f = build(&[("exits", 0, 1, &[7])]);
        f[desc + 16] = 0;
        assert!(read_stats(&f[..])
            .unwrap_err()
            .to_string()
            .contains("empty name"));
        // A name filling the whole field (no NUL) is taken as it is.
        let mut f = build(&[("exits", 0, 1, &[7])]);
        for b in &mut f[desc + 16..desc + 16 + NAME] {
            *b = b'a';
        }
        assert_eq!(read_stats(&f[..]).unwrap().1[0].name.len(), NAME);
    }

    #[test]
    fn ioctl_number() {
        assert_eq!(KVM_GET_STATS_FD, 0xaece);
    }

    #[test]
    fn a_bad_fd_fails_cleanly() {
        let f = File::open("/dev/null").unwrap();
        assert!(matches!(stats_fd(&f), Err(StatsError::Ioctl(_))));
    }
}
