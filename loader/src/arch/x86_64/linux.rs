//! The Linux x86 64-bit boot protocol (Documentation/arch/x86/boot.rst): the `boot_params`
//! "zero page" with the setup header, command line pointer and e820 table.

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};

use super::layout::CMDLINE_START;
use super::memmap::MemRegion;

/// `setup_header.boot_flag`.
pub const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `setup_header.header`: "HdrS".
pub const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// `setup_header.type_of_loader` for a loader without an assigned id.
pub const KERNEL_LOADER_OTHER: u8 = 0xff;
/// `setup_header.kernel_alignment` written for ELF (vmlinux) kernels, as Firecracker does.
pub const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x0100_0000;
/// `setup_header.xloadflags` bit: the kernel has the 64-bit entry at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// Offset of the 64-bit entry point from the bzImage protected-mode load address.
pub const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// The zero page's e820 table size.
pub const E820_MAX_ENTRIES_ZEROPAGE: usize = 128;
/// Command-line limit for setup headers older than 2.06 (which have no `cmdline_size`).
pub const OLD_CMDLINE_MAX: u32 = 255;

/// Why a zero page cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootParamsError {
    /// The command line is longer than the kernel accepts.
    #[error("the command line has {len} bytes; this kernel accepts at most {max}")]
    CmdlineTooLong {
        /// Bytes without the terminating NUL.
        len: usize,
        /// The kernel's limit (`setup_header.cmdline_size`).
        max: u32,
    },
    /// More memory regions than the zero page's e820 table holds.
    #[error("{0} memory regions do not fit the zero page's e820 table")]
    TooManyRegions(usize),
}

/// The longest command line (without NUL) a kernel with this setup header accepts.
pub fn cmdline_limit(hdr: &setup_header) -> u32 {
    if hdr.version >= 0x0206 {
        hdr.cmdline_size
    } else {
        OLD_CMDLINE_MAX
    }
}

/// Builds the zero page.
///
/// `setup` is the bzImage's setup header as loaded (its `code32_start` already set to the load
/// address); `None` for an ELF vmlinux, for which the loader fills in the magic numbers and
/// `kernel_alignment` itself. In both cases: `type_of_loader` = 0xff, `cmd_line_ptr` =
/// `CMDLINE_START` (`ext_cmd_line_ptr` = 0), no initrd, and the e820 table from `map`.
/// `cmdline_len` counts the command line's bytes without the terminating NUL.
pub fn boot_params(
    setup: Option<&setup_header>,
    cmdline_len: usize,
    map: &[MemRegion],
) -> Result<boot_params, BootParamsError> {
    let mut params = boot_params::default();
    match setup {
        Some(hdr) => {
            let max = cmdline_limit(hdr);
            if u32::try_from(cmdline_len).map_or(true, |l| l > max) {
                return Err(BootParamsError::CmdlineTooLong {
                    len: cmdline_len,
                    max,
                });
            }
            params.hdr = *hdr;
        }
        None => {
            params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
            params.hdr.header = KERNEL_HDR_MAGIC;
            params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
            params.hdr.cmdline_size =
                u32::try_from(cmdline_len).map_err(|_| BootParamsError::CmdlineTooLong {
                    len: cmdline_len,
                    max: u32::MAX,
                })?;
        }
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    // CMDLINE_START is far below 4 GiB.
    params.hdr.cmd_line_ptr = u32::try_from(CMDLINE_START).unwrap_or(0);
    params.ext_cmd_line_ptr = 0;
    params.hdr.ramdisk_image = 0;
    params.hdr.ramdisk_size = 0;
    if map.len() > E820_MAX_ENTRIES_ZEROPAGE {
        return Err(BootParamsError::TooManyRegions(map.len()));
    }
    for (slot, r) in params.e820_table.iter_mut().zip(map) {
        *slot = boot_e820_entry {
            addr: r.start,
            size: r.size,
            r#type: r.kind,
        };
    }
    params.e820_entries =
        u8::try_from(map.len()).map_err(|_| BootParamsError::TooManyRegions(map.len()))?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::memmap::memory_map;

    fn bzimage_header() -> setup_header {
        setup_header {
            setup_sects: 27,
            boot_flag: KERNEL_BOOT_FLAG_MAGIC,
            header: KERNEL_HDR_MAGIC,
            version: 0x020f,
            loadflags: 1,
            code32_start: 0x10_0000,
            kernel_alignment: 0x20_0000,
            relocatable_kernel: 1,
            xloadflags: 0x7f,
            cmdline_size: 2047,
            init_size: 0x80_0000,
            ..Default::default()
        }
    }

    #[test]
    fn bzimage_zero_page_keeps_the_header_and_fills_loader_fields() {
        let map = memory_map(128 << 20).unwrap();
        let p = boot_params(Some(&bzimage_header()), 30, &map).unwrap();
        assert_eq!({ p.hdr.boot_flag }, 0xaa55);
        assert_eq!({ p.hdr.header }, 0x5372_6448);
        assert_eq!({ p.hdr.version }, 0x020f);
        assert_eq!({ p.hdr.setup_sects }, 27);
        assert_eq!({ p.hdr.code32_start }, 0x10_0000);
        assert_eq!({ p.hdr.kernel_alignment }, 0x20_0000);
        assert_eq!(
            { p.hdr.cmdline_size },
            2047,
            "cmdline_size is the kernel's, read only"
        );
        assert_eq!({ p.hdr.init_size }, 0x80_0000);
        assert_eq!({ p.hdr.type_of_loader }, 0xff);
        assert_eq!({ p.hdr.cmd_line_ptr }, 0x20000);
        assert_eq!({ p.ext_cmd_line_ptr }, 0);
        assert_eq!({ p.hdr.ramdisk_image }, 0);
        assert_eq!({ p.hdr.ramdisk_size }, 0);
    }

    #[test]
    fn e820_table() {
        let map = memory_map(64 << 20).unwrap();
        let p = boot_params(None, 0, &map).unwrap();
        assert_eq!(p.e820_entries, 3);
        let e = p.e820_table;
        assert_eq!(
            ({ e[0].addr }, { e[0].size }, { e[0].r#type }),
            (0, 0x9fc00, 1)
        );
        assert_eq!(
            ({ e[1].addr }, { e[1].size }, { e[1].r#type }),
            (0x9fc00, 0x60400, 2)
        );
        assert_eq!(
            ({ e[2].addr }, { e[2].size }, { e[2].r#type }),
            (0x10_0000, (64 << 20) - 0x10_0000, 1)
        );
        assert_eq!(({ e[3].addr }, { e[3].size }, { e[3].r#type }), (0, 0, 0));
    }

    #[test]
    fn zero_page_offsets_match_the_boot_protocol() {
        // Documentation/arch/x86/zero-page.rst: e820_entries at 0x1e8, hdr at 0x1f1,
        // e820_table at 0x2d0; the structure is one page.
        let p = boot_params(None, 5, &memory_map(16 << 20).unwrap()).unwrap();
        let bytes: &[u8] = vm_memory::ByteValued::as_slice(&p);
        assert_eq!(bytes.len(), 4096);
        assert_eq!(bytes[0x1e8], 3);
        assert_eq!(&bytes[0x1fe..0x200], &0xaa55u16.to_le_bytes());
        assert_eq!(&bytes[0x202..0x206], b"HdrS");
        assert_eq!(bytes[0x210], 0xff, "type_of_loader");
        assert_eq!(
            &bytes[0x228..0x22c],
            &0x20000u32.to_le_bytes(),
            "cmd_line_ptr"
        );
        assert_eq!(
            &bytes[0x230..0x234],
            &0x0100_0000u32.to_le_bytes(),
            "kernel_alignment"
        );
        assert_eq!(&bytes[0x238..0x23c], &5u32.to_le_bytes(), "cmdline_size");
        assert_eq!(
            &bytes[0x2d0 + 20 * 2..0x2d0 + 20 * 2 + 8],
            &0x10_0000u64.to_le_bytes()
        );
    }

    #[test]
    fn command_line_limits() {
        let map = memory_map(64 << 20).unwrap();
        let hdr = bzimage_header();
        assert!(boot_params(Some(&hdr), 2047, &map).is_ok());
        assert_eq!(
            boot_params(Some(&hdr), 2048, &map).unwrap_err(),
            BootParamsError::CmdlineTooLong {
                len: 2048,
                max: 2047
            }
        );
        let old = setup_header {
            version: 0x0205,
            cmdline_size: 9999,
            ..hdr
        };
        assert_eq!(cmdline_limit(&old), 255);
        assert!(boot_params(Some(&old), 256, &map).is_err());
    }

    #[test]
    fn too_many_regions() {
        let map = vec![
            MemRegion {
                start: 0,
                size: 4096,
                kind: 1
            };
            129
        ];
        assert_eq!(
            boot_params(None, 0, &map).unwrap_err(),
            BootParamsError::TooManyRegions(129)
        );
    }
}
