//! The `.afterburn` annotation format, shared by every afterburn crate.
//!
//! This crate is the single source of truth for
//!
//! * [`SensitiveKind`]: the one enum of virtualization-sensitive instruction kinds that the
//!   scanner, the padder, the annotation records, the wedge and the binary translator share;
//! * the padding each kind needs ([`SensitiveKind::min_site_len`], [`site_len`]) and the NOP
//!   forms used to fill it ([`nop`]);
//! * the on-disk records of the `.afterburn` section ([`Header`], [`SiteRecord`]) with a
//!   reader that needs no allocator ([`Chunks`], [`Sites`]) and a writer into caller buffers.
//!
//! The byte-level specification is `docs/annotation-format.md`; this crate implements it.
//!
//! ```
//! use annotations::{Header, SiteRecord, SensitiveKind, Operands, RECORD_SIZE, Sites};
//! let mut buf = [0u8; 2 * RECORD_SIZE];
//! Header { count: 1, version: annotations::VERSION }.write(&mut buf[..RECORD_SIZE]);
//! let rec = SiteRecord {
//!     site: -16, insn_len: 1, site_len: 8, kind: SensitiveKind::Cli,
//!     operands: Operands::NONE, flags: 0,
//! };
//! rec.write(&mut buf[RECORD_SIZE..]);
//! let sites: Vec<_> = Sites::new(&buf).collect::<Result<_, _>>().unwrap();
//! assert_eq!(sites, [(RECORD_SIZE, rec)]);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

pub mod nop;

/// Name of the annotation section.
pub const SECTION_NAME: &str = ".afterburn";
/// Section that marks an object as opted out of annotation (see docs/annotation-format.md).
pub const NOANNOTATE_SECTION_NAME: &str = ".afterburn_noannotate";
/// Magic number at the start of every header record: the bytes `"AFBN"`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"AFBN");
/// Current format version.
pub const VERSION: u16 = 1;
/// Size in bytes of every record, header or site.
pub const RECORD_SIZE: usize = 16;
/// Required alignment of the section (`sh_addralign`).
pub const SECTION_ALIGN: u64 = 8;
/// The `kind` value that marks a header record; never a [`SensitiveKind`].
pub const HEADER_KIND: u16 = 0xffff;

/// Site flag: the site could not be padded (its length is fixed elsewhere); `site_len == insn_len`.
pub const FLAG_UNPADDED: u32 = 1 << 0;
/// Site flag: the site lies in code that the kernel patches in at run time (`.altinstr_replacement`).
pub const FLAG_ALTINSTR: u32 = 1 << 1;
/// Site flag: the record covers a `sti; hlt` pair (kind [`SensitiveKind::StiHlt`]).
pub const FLAG_PAIR: u32 = 1 << 2;
/// Every flag bit this version defines.
pub const KNOWN_FLAGS: u32 = FLAG_UNPADDED | FLAG_ALTINSTR | FLAG_PAIR;

macro_rules! kinds {
    ($( $(#[$m:meta])* $name:ident = $val:literal, $mnem:literal, $min:literal; )*) => {
        /// A kind of virtualization-sensitive instruction.
        ///
        /// The discriminant is the `kind` field of a site record and never changes meaning
        /// within a format version. `docs/sensitive-instructions.md` says why each is
        /// sensitive and what each backend does with it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u16)]
        #[non_exhaustive]
        pub enum SensitiveKind {
            $( $(#[$m])* $name = $val, )*
        }

        impl SensitiveKind {
            /// Every kind, in discriminant order.
            pub const ALL: &'static [SensitiveKind] = &[ $( SensitiveKind::$name, )* ];

            /// The kind with this discriminant, if any.
            pub const fn from_u16(v: u16) -> Option<SensitiveKind> {
                match v {
                    $( $val => Some(SensitiveKind::$name), )*
                    _ => None,
                }
            }

            /// Short lower-case name (the mnemonic family), stable, used in reports and JSON.
            pub const fn name(self) -> &'static str {
                match self { $( SensitiveKind::$name => $mnem, )* }
            }

            /// Minimum length of a padded site of this kind: the largest replacement any
            /// backend writes for it.
            pub const fn min_site_len(self) -> u8 {
                match self { $( SensitiveKind::$name => $min, )* }
            }
        }
    };
}

kinds! {
    /// `cli`: clears IF.
    Cli = 1, "cli", 8;
    /// `sti`: sets IF (interrupt shadow of one instruction).
    Sti = 2, "sti", 16;
    /// `sti; hlt` as an atomic pair: idle until the next interrupt with interrupts enabled.
    StiHlt = 3, "sti-hlt", 16;
    /// `pushf`/`pushfq` (operand size 2 or 8): exposes IF and IOPL.
    Pushf = 4, "pushf", 16;
    /// `popf`/`popfq` (operand size 2 or 8): writes IF silently at CPL3.
    Popf = 5, "popf", 16;
    /// `hlt`.
    Hlt = 6, "hlt", 8;
    /// `iret`/`iretd`/`iretq` (operand size 2, 4 or 8).
    Iret = 7, "iret", 8;
    /// Far return `lret`/`retf` (with or without an immediate).
    Lret = 8, "lret", 8;
    /// Far `jmp` through a memory operand (selector:offset).
    FarJmp = 9, "ljmp", 8;
    /// Far `call` through a memory operand (selector:offset).
    FarCall = 10, "lcall", 8;
    /// `int imm8`.
    IntN = 11, "int", 8;
    /// `in` (imm8 or dx port; size 1, 2 or 4).
    In = 12, "in", 8;
    /// `out` (imm8 or dx port; size 1, 2 or 4).
    Out = 13, "out", 8;
    /// `ins` (string input; size 1, 2 or 4; maybe `rep`).
    Ins = 14, "ins", 8;
    /// `outs` (string output; size 1, 2 or 4; maybe `rep`).
    Outs = 15, "outs", 8;
    /// `mov crN, reg`.
    MovToCr = 16, "mov-to-cr", 8;
    /// `mov reg, crN`.
    MovFromCr = 17, "mov-from-cr", 8;
    /// `mov drN, reg`.
    MovToDr = 18, "mov-to-dr", 8;
    /// `mov reg, drN`.
    MovFromDr = 19, "mov-from-dr", 8;
    /// `mov sreg, r/m16`.
    MovToSeg = 20, "mov-to-seg", 8;
    /// `mov r/m, sreg`.
    MovFromSeg = 21, "mov-from-seg", 8;
    /// `push fs`/`push gs`.
    PushSeg = 22, "push-seg", 8;
    /// `pop fs`/`pop gs`.
    PopSeg = 23, "pop-seg", 8;
    /// `lgdt m`.
    Lgdt = 24, "lgdt", 8;
    /// `lidt m`.
    Lidt = 25, "lidt", 8;
    /// `lldt r/m16`.
    Lldt = 26, "lldt", 8;
    /// `ltr r/m16`.
    Ltr = 27, "ltr", 8;
    /// `sgdt m`.
    Sgdt = 28, "sgdt", 8;
    /// `sidt m`.
    Sidt = 29, "sidt", 8;
    /// `sldt r/m`.
    Sldt = 30, "sldt", 8;
    /// `str r/m`.
    Str = 31, "str", 8;
    /// `smsw r/m`.
    Smsw = 32, "smsw", 8;
    /// `lmsw r/m16`.
    Lmsw = 33, "lmsw", 8;
    /// `clts`.
    Clts = 34, "clts", 8;
    /// `invlpg m`.
    Invlpg = 35, "invlpg", 8;
    /// `invpcid reg, m128`.
    Invpcid = 36, "invpcid", 8;
    /// `invd`.
    Invd = 37, "invd", 8;
    /// `wbinvd` (and `wbnoinvd`).
    Wbinvd = 38, "wbinvd", 8;
    /// `rdmsr`.
    Rdmsr = 39, "rdmsr", 8;
    /// `wrmsr` (and `wrmsrns`).
    Wrmsr = 40, "wrmsr", 8;
    /// `rdtsc`.
    Rdtsc = 41, "rdtsc", 8;
    /// `rdtscp`.
    Rdtscp = 42, "rdtscp", 8;
    /// `rdpmc`.
    Rdpmc = 43, "rdpmc", 8;
    /// `cpuid`.
    Cpuid = 44, "cpuid", 8;
    /// `swapgs`.
    Swapgs = 45, "swapgs", 8;
    /// `sysret`/`sysretq`.
    Sysret = 46, "sysret", 8;
    /// `sysexit`/`sysexitq`.
    Sysexit = 47, "sysexit", 8;
    /// `rdfsbase reg`.
    RdFsBase = 48, "rdfsbase", 8;
    /// `rdgsbase reg`.
    RdGsBase = 49, "rdgsbase", 8;
    /// `wrfsbase reg`.
    WrFsBase = 50, "wrfsbase", 8;
    /// `wrgsbase reg`.
    WrGsBase = 51, "wrgsbase", 8;
    /// `xsetbv`.
    Xsetbv = 52, "xsetbv", 8;
    /// `monitor`.
    Monitor = 53, "monitor", 8;
    /// `mwait`.
    Mwait = 54, "mwait", 8;
    /// `stac`.
    Stac = 55, "stac", 8;
    /// `clac`.
    Clac = 56, "clac", 8;
    /// `lar reg, r/m16`.
    Lar = 57, "lar", 8;
    /// `lsl reg, r/m16`.
    Lsl = 58, "lsl", 8;
    /// `verr r/m16`.
    Verr = 59, "verr", 8;
    /// `verw r/m16`.
    Verw = 60, "verw", 8;
    /// `vmcall` (Intel hypercall).
    Vmcall = 61, "vmcall", 8;
    /// `vmmcall` (AMD hypercall).
    Vmmcall = 62, "vmmcall", 8;
    /// `xsaves m`/`xsaves64 m` (supervisor state save).
    Xsaves = 63, "xsaves", 8;
    /// `xrstors m`/`xrstors64 m` (supervisor state restore).
    Xrstors = 64, "xrstors", 8;
}

impl core::fmt::Display for SensitiveKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl SensitiveKind {
    /// The kind with this name (as returned by [`SensitiveKind::name`]).
    pub fn from_name(name: &str) -> Option<SensitiveKind> {
        SensitiveKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
    }
}

/// Padded length of a site of `kind` whose original instruction(s) take `insn_len` bytes.
///
/// At least the original length (the native path keeps the instruction) and at least
/// [`SensitiveKind::min_site_len`].
pub const fn site_len(kind: SensitiveKind, insn_len: u8) -> u8 {
    let min = kind.min_site_len();
    if insn_len > min {
        insn_len
    } else {
        min
    }
}

/// Operand details of a site, packed into the record's `operands` word.
///
/// Layout (bit numbers of the little-endian `u32`):
///
/// | bits  | field  | meaning |
/// |-------|--------|---------|
/// | 0–7   | `reg`  | general register number 0–15 (rax=0 … r15=15), or [`Operands::NO_REG`] |
/// | 8–15  | `sys`  | control/debug register number, segment register (es=0 cs=1 ss=2 ds=3 fs=4 gs=5), or the imm8 (port, vector) |
/// | 16–23 | `size` | operand size in bytes (1, 2, 4, 8), 0 when not applicable |
/// | 24    | `IMM`  | `sys` holds an immediate (port imm8 form, `int n` vector) |
/// | 25    | `MEM`  | the instruction has a memory operand (`reg` is then [`Operands::NO_REG`]) |
/// | 26    | `REP`  | a `rep` prefix is present (string I/O) |
/// | 27–31 | —      | zero in this version |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Operands(pub u32);

impl Operands {
    /// No operand details.
    pub const NONE: Operands = Operands(0);
    /// `reg` value meaning "no general register".
    pub const NO_REG: u8 = 0xff;
    /// Bit: `sys` holds an immediate.
    pub const IMM: u32 = 1 << 24;
    /// Bit: memory operand.
    pub const MEM: u32 = 1 << 25;
    /// Bit: `rep` prefix.
    pub const REP: u32 = 1 << 26;
    /// Bits that must be zero in this version.
    pub const RESERVED: u32 = 0xf800_0000;

    /// Packs the fields.
    pub const fn new(reg: u8, sys: u8, size: u8, flags: u32) -> Operands {
        Operands((reg as u32) | ((sys as u32) << 8) | ((size as u32) << 16) | (flags & 0x0700_0000))
    }
    /// General register number or [`Operands::NO_REG`].
    pub const fn reg(self) -> u8 {
        self.0 as u8
    }
    /// System register number, segment register number or immediate.
    pub const fn sys(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Operand size in bytes (0 when not applicable).
    pub const fn size(self) -> u8 {
        (self.0 >> 16) as u8
    }
    /// `sys` is an immediate.
    pub const fn is_imm(self) -> bool {
        self.0 & Self::IMM != 0
    }
    /// Memory operand.
    pub const fn is_mem(self) -> bool {
        self.0 & Self::MEM != 0
    }
    /// `rep` prefix.
    pub const fn is_rep(self) -> bool {
        self.0 & Self::REP != 0
    }
}

/// A header record: starts every chunk of site records (one chunk per input object; linking
/// concatenates chunks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Number of site records that follow this header.
    pub count: u32,
    /// Format version of the chunk.
    pub version: u16,
}

/// One site record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteRecord {
    /// PC-relative offset: the site's address minus the address of this field
    /// (an `R_X86_64_PC32` relocation in relocatable objects).
    pub site: i32,
    /// Length of the original instruction(s).
    pub insn_len: u8,
    /// Length of the whole site: original instruction(s) plus padding.
    pub site_len: u8,
    /// What the instruction is.
    pub kind: SensitiveKind,
    /// Operand details.
    pub operands: Operands,
    /// `FLAG_*` bits.
    pub flags: u32,
}

/// Why bytes are not a valid `.afterburn` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The section length is not a multiple of [`RECORD_SIZE`].
    BadLength {
        /// Section length.
        len: usize,
    },
    /// A chunk does not start with a header (bad magic or kind).
    NotAHeader {
        /// Byte offset of the record in the section.
        offset: usize,
    },
    /// A header has a version this reader does not know.
    UnsupportedVersion {
        /// Byte offset of the header.
        offset: usize,
        /// The version found.
        version: u16,
    },
    /// A header announces more records than the section holds.
    Truncated {
        /// Byte offset of the header.
        offset: usize,
        /// Records announced.
        count: u32,
    },
    /// A site record has an unknown kind.
    UnknownKind {
        /// Byte offset of the record.
        offset: usize,
        /// The kind value found.
        kind: u16,
    },
    /// A site record is inconsistent (zero length, `site_len < insn_len`, reserved bits set).
    BadRecord {
        /// Byte offset of the record.
        offset: usize,
        /// What is wrong.
        why: &'static str,
    },
}

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FormatError::BadLength { len } => {
                write!(f, "section length {len} is not a multiple of {RECORD_SIZE}")
            }
            FormatError::NotAHeader { offset } => {
                write!(f, "offset {offset:#x}: expected a header record")
            }
            FormatError::UnsupportedVersion { offset, version } => {
                write!(
                    f,
                    "offset {offset:#x}: unsupported format version {version}"
                )
            }
            FormatError::Truncated { offset, count } => {
                write!(
                    f,
                    "offset {offset:#x}: header announces {count} records past the end"
                )
            }
            FormatError::UnknownKind { offset, kind } => {
                write!(f, "offset {offset:#x}: unknown site kind {kind}")
            }
            FormatError::BadRecord { offset, why } => write!(f, "offset {offset:#x}: {why}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FormatError {}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl Header {
    /// Writes the header into the first [`RECORD_SIZE`] bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`RECORD_SIZE`] (a caller bug, not an input error).
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..RECORD_SIZE];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4] = 0;
        out[5] = 0;
        out[6..8].copy_from_slice(&HEADER_KIND.to_le_bytes());
        out[8..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..14].copy_from_slice(&self.version.to_le_bytes());
        out[14..16].copy_from_slice(&(RECORD_SIZE as u16).to_le_bytes());
    }

    /// Parses a header from one record's bytes; `offset` is only used in errors.
    pub fn parse(rec: &[u8; RECORD_SIZE], offset: usize) -> Result<Header, FormatError> {
        if u32_at(rec, 0) != MAGIC || u16_at(rec, 6) != HEADER_KIND {
            return Err(FormatError::NotAHeader { offset });
        }
        let version = u16_at(rec, 12);
        if version != VERSION || usize::from(u16_at(rec, 14)) != RECORD_SIZE {
            return Err(FormatError::UnsupportedVersion { offset, version });
        }
        Ok(Header {
            count: u32_at(rec, 8),
            version,
        })
    }
}

impl SiteRecord {
    /// Writes the record into the first [`RECORD_SIZE`] bytes of `out`.
    ///
    /// # Panics
    /// If `out` is shorter than [`RECORD_SIZE`] (a caller bug, not an input error).
    pub fn write(&self, out: &mut [u8]) {
        let out = &mut out[..RECORD_SIZE];
        out[0..4].copy_from_slice(&self.site.to_le_bytes());
        out[4] = self.insn_len;
        out[5] = self.site_len;
        out[6..8].copy_from_slice(&(self.kind as u16).to_le_bytes());
        out[8..12].copy_from_slice(&self.operands.0.to_le_bytes());
        out[12..16].copy_from_slice(&self.flags.to_le_bytes());
    }

    /// Parses and validates a site record; `offset` is only used in errors.
    pub fn parse(rec: &[u8; RECORD_SIZE], offset: usize) -> Result<SiteRecord, FormatError> {
        let raw_kind = u16_at(rec, 6);
        let kind = SensitiveKind::from_u16(raw_kind).ok_or(FormatError::UnknownKind {
            offset,
            kind: raw_kind,
        })?;
        let r = SiteRecord {
            site: i32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]),
            insn_len: rec[4],
            site_len: rec[5],
            kind,
            operands: Operands(u32_at(rec, 8)),
            flags: u32_at(rec, 12),
        };
        let why = if r.insn_len == 0 || r.insn_len > 15 * 2 {
            Some("instruction length out of range")
        } else if r.site_len < r.insn_len {
            Some("site shorter than its instruction")
        } else if r.flags & FLAG_UNPADDED != 0 && r.site_len != r.insn_len {
            Some("unpadded site with padding")
        } else if r.flags & !KNOWN_FLAGS != 0 {
            Some("unknown flag bits set")
        } else if r.operands.0 & Operands::RESERVED != 0 {
            Some("reserved operand bits set")
        } else {
            None
        };
        match why {
            Some(why) => Err(FormatError::BadRecord { offset, why }),
            None => Ok(r),
        }
    }

    /// Address of the site, given the address at which this record (its `site` field) lies.
    pub const fn target(&self, record_addr: u64) -> u64 {
        record_addr.wrapping_add(self.site as i64 as u64)
    }
}

fn record_at(bytes: &[u8], offset: usize) -> &[u8; RECORD_SIZE] {
    // Callers check bounds first; a failed conversion here would be a bug in this module.
    bytes[offset..offset + RECORD_SIZE]
        .try_into()
        .expect("record in bounds")
}

/// One chunk of a section: a header and the byte range of its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Section offset of the header.
    pub offset: usize,
    /// The header.
    pub header: Header,
}

/// Iterates over the chunks of a `.afterburn` section, skipping all-zero records between
/// chunks (linker alignment fill).
#[derive(Clone, Debug)]
pub struct Chunks<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Chunks<'a> {
    /// Starts reading `bytes`, the contents of a `.afterburn` section.
    pub fn new(bytes: &'a [u8]) -> Self {
        Chunks {
            bytes,
            pos: 0,
            failed: false,
        }
    }
}

impl Iterator for Chunks<'_> {
    type Item = Result<Chunk, FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.bytes.len() % RECORD_SIZE != 0 {
            self.failed = true;
            return Some(Err(FormatError::BadLength {
                len: self.bytes.len(),
            }));
        }
        while self.pos < self.bytes.len() && record_at(self.bytes, self.pos).iter().all(|&b| b == 0)
        {
            self.pos += RECORD_SIZE;
        }
        if self.pos >= self.bytes.len() {
            return None;
        }
        let offset = self.pos;
        let res = Header::parse(record_at(self.bytes, offset), offset).and_then(|header| {
            let avail = (self.bytes.len() - offset) / RECORD_SIZE - 1;
            if header.count as usize > avail {
                Err(FormatError::Truncated {
                    offset,
                    count: header.count,
                })
            } else {
                Ok(Chunk { offset, header })
            }
        });
        match &res {
            Ok(c) => self.pos = offset + RECORD_SIZE * (1 + c.header.count as usize),
            Err(_) => self.failed = true,
        }
        Some(res)
    }
}

/// Iterates over every site record of a `.afterburn` section, yielding the section offset of
/// each record with the parsed record.
#[derive(Clone, Debug)]
pub struct Sites<'a> {
    chunks: Chunks<'a>,
    pos: usize,
    end: usize,
}

impl<'a> Sites<'a> {
    /// Starts reading `bytes`, the contents of a `.afterburn` section.
    pub fn new(bytes: &'a [u8]) -> Self {
        Sites {
            chunks: Chunks::new(bytes),
            pos: 0,
            end: 0,
        }
    }
}

impl Iterator for Sites<'_> {
    type Item = Result<(usize, SiteRecord), FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        while self.pos >= self.end {
            match self.chunks.next()? {
                Ok(c) => {
                    self.pos = c.offset + RECORD_SIZE;
                    self.end = self.pos + RECORD_SIZE * c.header.count as usize;
                }
                Err(e) => return Some(Err(e)),
            }
        }
        let offset = self.pos;
        self.pos += RECORD_SIZE;
        let r = SiteRecord::parse(record_at(self.chunks.bytes, offset), offset);
        if r.is_err() {
            self.chunks.failed = true;
            self.end = 0;
            self.pos = 0;
        }
        Some(r.map(|r| (offset, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_are_unique() {
        for (i, k) in SensitiveKind::ALL.iter().enumerate() {
            assert_eq!(SensitiveKind::from_u16(*k as u16), Some(*k));
            assert_eq!(SensitiveKind::from_name(k.name()), Some(*k));
            assert!(k.min_site_len() >= 5, "{k} cannot hold a call rel32");
            for other in &SensitiveKind::ALL[i + 1..] {
                assert_ne!(k.name(), other.name());
            }
        }
        assert_eq!(SensitiveKind::from_u16(0), None);
        assert_eq!(SensitiveKind::from_u16(HEADER_KIND), None);
    }

    #[test]
    fn records_round_trip_across_chunks() {
        let mut buf = [0u8; 7 * RECORD_SIZE];
        let a = SiteRecord {
            site: -4,
            insn_len: 3,
            site_len: 8,
            kind: SensitiveKind::MovToCr,
            operands: Operands::new(7, 3, 8, 0),
            flags: 0,
        };
        let b = SiteRecord {
            kind: SensitiveKind::Out,
            operands: Operands::new(0, 0xf4, 4, Operands::IMM),
            ..a
        };
        Header {
            count: 2,
            version: VERSION,
        }
        .write(&mut buf[0..]);
        a.write(&mut buf[16..]);
        b.write(&mut buf[32..]);
        // one all-zero record of alignment fill, then a second chunk
        Header {
            count: 1,
            version: VERSION,
        }
        .write(&mut buf[64..]);
        a.write(&mut buf[80..]);
        Header {
            count: 0,
            version: VERSION,
        }
        .write(&mut buf[96..]);
        let got: [(usize, SiteRecord); 3] = {
            let mut it = Sites::new(&buf);
            let r = [
                it.next().unwrap().unwrap(),
                it.next().unwrap().unwrap(),
                it.next().unwrap().unwrap(),
            ];
            assert!(it.next().is_none());
            r
        };
        assert_eq!(got, [(16, a), (32, b), (80, a)]);
        assert_eq!(b.operands.sys(), 0xf4);
        assert!(b.operands.is_imm() && !b.operands.is_mem());
        assert_eq!(a.operands.reg(), 7);
        assert_eq!(a.operands.size(), 8);
        assert_eq!(a.target(0x1000), 0xffc);
    }

    #[test]
    fn bad_sections_are_errors() {
        let mut buf = [0u8; 3 * RECORD_SIZE];
        assert_eq!(
            Sites::new(&buf[..17]).next(),
            Some(Err(FormatError::BadLength { len: 17 }))
        );
        assert_eq!(Sites::new(&buf).next(), None, "all-zero section is empty");
        Header {
            count: 5,
            version: VERSION,
        }
        .write(&mut buf);
        assert_eq!(
            Sites::new(&buf).next(),
            Some(Err(FormatError::Truncated {
                offset: 0,
                count: 5
            }))
        );
        Header {
            count: 1,
            version: 99,
        }
        .write(&mut buf);
        assert!(matches!(
            Sites::new(&buf).next(),
            Some(Err(FormatError::UnsupportedVersion { .. }))
        ));
        Header {
            count: 2,
            version: VERSION,
        }
        .write(&mut buf);
        buf[16 + 6] = 0xee; // unknown kind
        buf[16 + 4] = 1;
        buf[16 + 5] = 8;
        let mut it = Sites::new(&buf);
        assert_eq!(
            it.next(),
            Some(Err(FormatError::UnknownKind {
                offset: 16,
                kind: 0xee
            }))
        );
        assert_eq!(it.next(), None, "iteration stops after an error");
        buf[16 + 6] = SensitiveKind::Cli as u8;
        buf[16 + 5] = 0; // site shorter than insn
        assert!(matches!(
            Sites::new(&buf).next(),
            Some(Err(FormatError::BadRecord { .. }))
        ));
        buf[1] = b'X';
        assert_eq!(
            Sites::new(&buf).next(),
            Some(Err(FormatError::NotAHeader { offset: 0 }))
        );
    }

    #[test]
    fn site_len_covers_instruction_and_replacement() {
        assert_eq!(site_len(SensitiveKind::Cli, 1), 8);
        assert_eq!(site_len(SensitiveKind::MovToCr, 12), 12);
        assert_eq!(site_len(SensitiveKind::StiHlt, 2), 16);
    }
}
