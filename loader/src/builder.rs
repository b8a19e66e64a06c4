//! From a kernel file to a machine ready to run: guest RAM with the kernel and its boot
//! structures, a VM with the in-kernel irqchip, a configured vCPU, the devices, the backend.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::Elf;
use linux_loader::loader::KernelLoader;
use vm_memory::{ByteValued, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::arch::x86_64::gdt::{boot_gdt, EntryMode};
use crate::arch::x86_64::layout::{
    BOOT_GDT_START, CMDLINE_MAX_SIZE, CMDLINE_START, PVH_INFO_START, PVH_MEMMAP_START,
    ZERO_PAGE_START,
};
use crate::arch::x86_64::linux::{boot_params, BZIMAGE_64BIT_ENTRY_OFFSET};
use crate::arch::x86_64::memmap::{memory_map, MemSizeError};
use crate::arch::x86_64::pvh::{memmap_entries, start_info};
use crate::arch::x86_64::regs::{identity_page_tables, linux64_regs, pvh_regs};
use crate::backend::{Backend, BackendError, BackendKind, VmContext};
use crate::devices::serial::{SerialConsole, COM1_IRQ};
use crate::devices::Devices;
use crate::kernel::{check_fits, inspect, BootProtocol, KernelKind, MAX_KERNEL_FILE};
use crate::vstate::memory::{create_guest_memory, write_bytes, write_u64s, GuestMemory};
use crate::vstate::vcpu::Vcpu;
use crate::vstate::vm::{Vm, VmError};

/// Default guest RAM in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// The command line given to Linux kernels when none is given: console and early console on
/// COM1, reboot by triple fault (so a reboot ends the run with code 101), no waiting on panic.
pub const DEFAULT_LINUX_CMDLINE: &str = "console=ttyS0 earlyprintk=serial,ttyS0 reboot=t panic=-1";

/// What to run.
#[derive(Clone, Debug)]
pub struct VmConfig {
    /// The kernel image.
    pub kernel: PathBuf,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// The kernel command line; `None` for the default (empty for PVH kernels,
    /// `DEFAULT_LINUX_CMDLINE` for Linux).
    pub cmdline: Option<String>,
    /// The backend.
    pub backend: BackendKind,
}

/// Why the machine could not be built (exit code 100).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The backend is not available.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The RAM size cannot be laid out.
    #[error("--memory {mib}: {source}")]
    Memory {
        /// The size asked for, in MiB.
        mib: u64,
        /// Why not.
        source: MemSizeError,
    },
    /// The kernel file cannot be read.
    #[error("{path}: {detail}")]
    ReadKernel {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The kernel image is not bootable.
    #[error("{path}: {detail}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The command line is not acceptable.
    #[error("kernel command line: {0}")]
    Cmdline(String),
    /// KVM could not set up the VM.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// Guest memory could not be set up.
    #[error("guest memory: {0}")]
    GuestMemory(String),
}

/// How the kernel is booted.
#[derive(Clone, Debug)]
pub struct BootInfo {
    /// The boot protocol.
    pub protocol: BootProtocol,
    /// The first instruction's guest address.
    pub entry: u64,
    /// The end of the loaded kernel (guest-physical, exclusive).
    pub kernel_end: u64,
    /// The command line given to the kernel.
    pub cmdline: String,
    /// Guest RAM in bytes.
    pub ram_size: u64,
}

/// A machine ready to run. Field order is drop order: the vCPU and the VM go before the guest
/// memory they use.
pub struct Machine<W: Write> {
    /// The vCPU.
    pub vcpu: Vcpu,
    /// The VM.
    pub vm: Vm,
    /// The userspace devices.
    pub devices: Devices<W>,
    /// The backend.
    pub backend: Box<dyn Backend>,
    /// How the kernel is booted.
    pub boot: BootInfo,
    /// Guest RAM (must outlive the VM).
    pub memory: GuestMemory,
}

fn image_err(path: &Path, detail: impl ToString) -> StartError {
    StartError::Image {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn mem_err(e: impl ToString) -> StartError {
    StartError::GuestMemory(e.to_string())
}

/// Reads the whole kernel file (at most `MAX_KERNEL_FILE` bytes).
pub fn read_kernel(path: &Path) -> Result<Vec<u8>, StartError> {
    let err = |detail: String| StartError::ReadKernel {
        path: path.to_path_buf(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > MAX_KERNEL_FILE {
        return Err(err(format!(
            "{} bytes is larger than the {MAX_KERNEL_FILE} bytes a kernel may have",
            meta.len()
        )));
    }
    std::fs::read(path).map_err(|e| err(e.to_string()))
}

/// The command line for a kernel, checked: no NUL byte, fits `CMDLINE_MAX_SIZE` with its NUL,
/// and the bzImage's own limit.
pub fn resolve_cmdline(given: Option<&str>, kind: &KernelKind) -> Result<String, StartError> {
    let cmdline = match given {
        Some(c) => c.to_string(),
        None if kind.protocol() == BootProtocol::Pvh => String::new(),
        None => DEFAULT_LINUX_CMDLINE.to_string(),
    };
    if cmdline.contains('\0') {
        return Err(StartError::Cmdline("contains a NUL byte".into()));
    }
    if cmdline.len() + 1 > CMDLINE_MAX_SIZE {
        return Err(StartError::Cmdline(format!(
            "{} bytes; at most {} fit",
            cmdline.len(),
            CMDLINE_MAX_SIZE - 1
        )));
    }
    if let KernelKind::BzImage(b) = kind {
        if b.version >= 0x0206
            && cmdline.len() > usize::try_from(b.cmdline_size).unwrap_or(usize::MAX)
        {
            return Err(StartError::Cmdline(format!(
                "{} bytes; this kernel accepts at most {}",
                cmdline.len(),
                b.cmdline_size
            )));
        }
    }
    Ok(cmdline)
}

/// Builds the machine for `config`, with COM1 writing to `out`.
pub fn build<W: Write>(config: &VmConfig, out: W) -> Result<Machine<W>, StartError> {
    let mut backend = config.backend.create()?;
    let ram_size = config
        .memory_mib
        .checked_mul(1 << 20)
        .ok_or(StartError::Memory {
            mib: config.memory_mib,
            source: MemSizeError::TooLarge(u64::MAX),
        })?;
    let map = memory_map(ram_size).map_err(|source| StartError::Memory {
        mib: config.memory_mib,
        source,
    })?;
    let path = config.kernel.as_path();
    let bytes = read_kernel(path)?;
    let kind = inspect(&bytes).map_err(|e| image_err(path, e))?;
    check_fits(&kind, ram_size).map_err(|e| image_err(path, e))?;
    let cmdline = resolve_cmdline(config.cmdline.as_deref(), &kind)?;
    let protocol = kind.protocol();

    let memory = create_guest_memory(ram_size).map_err(mem_err)?;
    let mut image = Cursor::new(bytes.as_slice());
    let (entry, kernel_end, mode, regs, setup) = match &kind {
        KernelKind::Elf(info) => {
            let loaded =
                Elf::load(&memory, None, &mut image, None).map_err(|e| image_err(path, e))?;
            match info.pvh_entry {
                Some(pvh) => {
                    let entry = u64::from(pvh);
                    let regs = pvh_regs(entry, PVH_INFO_START);
                    (entry, loaded.kernel_end, EntryMode::Protected32, regs, None)
                }
                None => (
                    info.entry,
                    loaded.kernel_end,
                    EntryMode::Long64,
                    linux64_regs(info.entry, ZERO_PAGE_START),
                    None,
                ),
            }
        }
        KernelKind::BzImage(_) => {
            let loaded =
                BzImage::load(&memory, None, &mut image, None).map_err(|e| image_err(path, e))?;
            // The setup header comes back with code32_start set to the load address.
            let entry = loaded.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET;
            let regs = linux64_regs(entry, ZERO_PAGE_START);
            (
                entry,
                loaded.kernel_end,
                EntryMode::Long64,
                regs,
                loaded.setup_header,
            )
        }
    };

    // The command line, NUL-terminated.
    let mut c = cmdline.clone().into_bytes();
    c.push(0);
    write_bytes(&memory, CMDLINE_START, &c).map_err(mem_err)?;
    // The boot GDT (the IDT stays zero).
    let gdt: Vec<u8> = boot_gdt(mode)
        .iter()
        .flat_map(|e| e.to_le_bytes())
        .collect();
    write_bytes(&memory, BOOT_GDT_START, &gdt).map_err(mem_err)?;

    match &kind {
        KernelKind::Elf(info) if info.pvh_entry.is_some() => {
            let si = start_info(&map).map_err(mem_err)?;
            let mut params = BootParams::new(&si, GuestAddress(PVH_INFO_START));
            params.set_sections(&memmap_entries(&map), GuestAddress(PVH_MEMMAP_START));
            PvhBootConfigurator::write_bootparams::<GuestMemory>(&params, &memory)
                .map_err(mem_err)?;
        }
        _ => {
            let zp = boot_params(setup.as_ref(), cmdline.len(), &map)
                .map_err(|e| StartError::Cmdline(e.to_string()))?;
            write_bytes(&memory, ZERO_PAGE_START, zp.as_slice()).map_err(mem_err)?;
            write_u64s(&memory, &identity_page_tables()).map_err(mem_err)?;
        }
    }

    let vm = Vm::new()?;
    vm.setup_irqchip()?;
    vm.register_memory(&memory)?;
    let mut vcpu = Vcpu::new(&vm, 0)?;
    vcpu.configure(&vm, mode, &regs).map_err(|e| {
        StartError::Vm(VmError::Ioctl {
            what: e.what,
            source: e.source,
        })
    })?;

    let irq = EventFd::new(EFD_NONBLOCK).map_err(|e| mem_err(format!("eventfd: {e}")))?;
    vm.register_irqfd(&irq, COM1_IRQ)?;
    let devices = Devices::new(SerialConsole::new(irq, out));

    backend.prepare(&mut VmContext {
        memory: &memory,
        vcpu: vcpu.fd_mut(),
        protocol,
        entry,
        vm: vm.fd(),
        kernel: &bytes,
    })?;

    Ok(Machine {
        vcpu,
        vm,
        devices,
        backend,
        boot: BootInfo {
            protocol,
            entry,
            kernel_end,
            cmdline,
            ram_size,
        },
        memory,
    })
}
