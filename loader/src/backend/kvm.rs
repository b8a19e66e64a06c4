//! The kvm backend, host side: runs an afterburnt kernel deprivileged at CPL3 with the wedge.
//!
//! * `prepare`: reads the kernel's `.afterburn` sites, plans both forms of every site
//!   (wedge::kvm), writes the *boot forms* (`out %al, $START_PORT`) into the loaded kernel and
//!   fills the wedge's memory slot (runtime, thunks, real GDT/IDT/TSS, CPL0 stubs, hole page
//!   tables). The kernel boots at CPL0 on its own page tables, as on bare.
//! * the first site the kernel reaches exits to `START`: the host captures the CPU state into
//!   the virtual CPU, writes every site's *final form*, builds the shadow page tables and
//!   resumes the kernel at that site at CPL3.
//! * then it serves hypercalls (`HC_PORT`), events the CPL0 exit stubs hand over (`STUB_PORT`:
//!   page faults in kernel mode, everything in user mode) and user-mode system calls
//!   (`SYSCALL_PORT`), and drains the console ring at every exit.
//!
//! Everything read from the guest (the vCPU page, the hypercall page, frames, page tables,
//! descriptors) is checked; a guest that breaks the rules ends the run with code 105 and a
//! report naming what it did. docs/backends.md and docs/hypercall-abi.md are the specs.

pub mod cpu;
pub mod paging;
pub mod slot;
mod user;

use kvm_bindings::{
    kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs, KVM_MAX_CPUID_ENTRIES,
    KVM_MP_STATE_HALTED,
};
use kvm_ioctls::{Cap, SyncReg};
use vm_memory::{Bytes, GuestAddress};
use wedge::image::{ElfImage, Image, ImageError};
use wedge::layout::{
    self, hc, hc_number, vcpu as vf, CPUID_ENTRIES, CPUID_ENTRY_SIZE, CPUID_MAX, HC_PORT, HOLE_VA,
    RING_DATA, RING_SIZE, R_CPL0, R_CPUID, R_DATA, R_GDT, R_HCALL, R_IDT_K, R_IDT_U, R_RING,
    R_STACK, R_SYSCALL, R_TEXT, R_THUNKS, R_TSS, R_VCPU, SEL_CS3, SEL_SS3, SEL_TSS, START_PORT,
    STUBS_K, STUBS_X, STUB_PORT, STUB_SLOT, SYSCALL_PORT,
};
use wedge::runtime;

use self::cpu::{code64, data, null_segment, segment, tss_segment};
use self::paging::{Access, Paging, Shadow, ShadowError, View, WalkError};
use self::slot::{Slot, SlotError};
use super::{Backend, BackendError, Disposition, VmContext};
use crate::end::EndReason;
use crate::vstate::memory::GuestMemory;

const RFLAGS_IF: u64 = 0x200;
const RFLAGS_TF: u64 = 0x100;
const RFLAGS_IOPL: u64 = 0x3000;
const RFLAGS_NT: u64 = 0x4000;
const RFLAGS_RF: u64 = 0x1_0000;
const RFLAGS_VM: u64 = 0x2_0000;
/// Flags a guest context may carry into the real RFLAGS: arithmetic, TF, DF, AC, ID.
const RFLAGS_GUEST: u64 = 0x0004_0dd5 | 0x20_0000;
const CR0_PE: u64 = 1;
const CR0_MP: u64 = 2;
const CR0_ET: u64 = 0x10;
const CR0_NE: u64 = 0x20;
const CR0_WP: u64 = 0x1_0000;
const CR0_PG: u64 = 0x8000_0000;
const CR4_PAE: u64 = 0x20;
const CR4_OSFXSR: u64 = 0x200;
const CR4_OSXMMEXCPT: u64 = 0x400;
const CR4_OSXSAVE: u64 = 0x4_0000;
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;
const EFER_NXE: u64 = 0x800;

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SFMASK: u32 = 0xc000_0084;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_KGS_BASE: u32 = 0xc000_0102;
const MSR_EFER: u32 = 0xc000_0080;

/// The guest's MSRs captured into the virtual CPU at the switch (MSR, vCPU field).
const CAPTURED_MSRS: &[(u32, &str)] = &[
    (MSR_STAR, "STAR"),
    (MSR_LSTAR, "LSTAR"),
    (MSR_CSTAR, "CSTAR"),
    (MSR_SFMASK, "SFMASK"),
    (MSR_FS_BASE, "FS_BASE"),
    (MSR_GS_BASE, "GS_BASE"),
    (MSR_KGS_BASE, "KGS_BASE"),
    (0x1b, "APIC_BASE"),
    (0x277, "PAT"),
    (0x174, "SYSENTER_CS"),
    (0x175, "SYSENTER_ESP"),
    (0x176, "SYSENTER_EIP"),
];

/// `FATAL` reasons the runtime reports (wedge/runtime/wedge.h).
const FATAL_NO_GATE: u64 = 1;
const FATAL_DOUBLE: u64 = 4;

/// Vectors for which the CPU pushes an error code.
fn has_error_code(v: u64) -> bool {
    matches!(v, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

fn canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1_ffff
}

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `prepare` has not run.
    New,
    /// The kernel boots at CPL0 with the sites in their boot form.
    Boot,
    /// The kernel runs deprivileged.
    Running,
}

/// Mode of the virtual CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Kernel,
    User,
}

/// Counters for the stats JSON.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    hypercalls: u64,
    halts: u64,
    cr3_writes: u64,
    invlpgs: u64,
    user_entries: u64,
    user_events: u64,
    syscalls: u64,
    kernel_page_faults: u64,
    hidden_faults: u64,
    guest_faults: u64,
    pool_recycles: u64,
    console_flushes: u64,
    stub_exits: u64,
    /// Host time spent handling each kind of exit, in nanoseconds.
    hypercall_ns: u64,
    stub_ns: u64,
    syscall_ns: u64,
    start_ns: u64,
}

/// The kvm backend (host side).
pub struct KvmBackend {
    phase: Phase,
    slot: Option<Slot>,
    final_form: Vec<(u64, Vec<u8>)>,
    /// Virtual to guest-physical ranges of the loaded kernel (from its program headers).
    segments: Vec<(u64, u64, u64)>,
    shadow: Option<Shadow>,
    mode: Mode,
    ring_tail: u64,
    output: Vec<u8>,
    counters: Counters,
    last_fill: Option<(u64, u64)>,
    repeated_fills: u32,
    /// Registers travel through `kvm_run` (KVM_CAP_SYNC_REGS) instead of ioctls.
    sync_regs: bool,
}

impl Default for KvmBackend {
    fn default() -> Self {
        KvmBackend::new()
    }
}

/// Why the run must end: the detail for the report.
struct Stop(EndReason);

impl From<SlotError> for Stop {
    fn from(e: SlotError) -> Stop {
        Stop(EndReason::HypercallAbi {
            detail: format!("wedge memory: {e}"),
        })
    }
}

impl From<ShadowError> for Stop {
    fn from(e: ShadowError) -> Stop {
        Stop(EndReason::HypercallAbi {
            detail: format!("shadow page tables: {e}"),
        })
    }
}

fn abi(detail: impl Into<String>) -> Stop {
    Stop(EndReason::HypercallAbi {
        detail: detail.into(),
    })
}

fn kvm_err(what: &str, e: kvm_ioctls::Error) -> Stop {
    Stop(EndReason::RunFailed {
        error: format!("{what}: {e}"),
    })
}

/// The loaded kernel as a wedge [`Image`]: virtual addresses translated through the program
/// headers into guest RAM.
struct GuestImage<'a> {
    mem: &'a GuestMemory,
    segments: &'a [(u64, u64, u64)],
}

impl GuestImage<'_> {
    fn gpa(&self, addr: u64, len: usize) -> Result<u64, ImageError> {
        for &(va, pa, size) in self.segments {
            if let Some(off) = addr.checked_sub(va) {
                if off.checked_add(len as u64).is_some_and(|end| end <= size) {
                    return Ok(pa + off);
                }
            }
        }
        Err(ImageError::Unmapped { addr, len })
    }
}

impl Image for GuestImage<'_> {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ImageError> {
        let gpa = self.gpa(addr, len)?;
        let mut v = vec![0u8; len];
        self.mem
            .read_slice(&mut v, GuestAddress(gpa))
            .map_err(|_| ImageError::Unmapped { addr, len })?;
        Ok(v)
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), ImageError> {
        let gpa = self.gpa(addr, bytes.len())?;
        self.mem
            .write_slice(bytes, GuestAddress(gpa))
            .map_err(|_| ImageError::Unmapped {
                addr,
                len: bytes.len(),
            })
    }
}

/// A CPU frame on a CPL0 stack: (rip, cs, rflags, rsp, ss) and the error code.
#[derive(Clone, Copy, Debug)]
struct Frame {
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

impl KvmBackend {
    /// A backend that has not prepared anything yet.
    pub fn new() -> KvmBackend {
        KvmBackend {
            phase: Phase::New,
            slot: None,
            final_form: Vec::new(),
            segments: Vec::new(),
            shadow: None,
            mode: Mode::Kernel,
            ring_tail: 0,
            output: Vec::new(),
            counters: Counters::default(),
            last_fill: None,
            repeated_fills: 0,
            sync_regs: false,
        }
    }

    fn slot(&self) -> Result<&Slot, Stop> {
        self.slot
            .as_ref()
            .ok_or_else(|| abi("the wedge is not installed"))
    }

    fn vget(&self, name: &str) -> Result<u64, Stop> {
        Ok(self.slot()?.get(&R_VCPU, vf(name))?)
    }

    fn vset(&self, name: &str, v: u64) -> Result<(), Stop> {
        Ok(self.slot()?.set(&R_VCPU, vf(name), v)?)
    }

    fn paging(&self) -> Result<Paging, Stop> {
        Ok(Paging {
            cr3: self.vget("CR3")?,
            wp: self.vget("CR0")? & CR0_WP != 0,
            nxe: self.vget("EFER")? & EFER_NXE != 0,
        })
    }

    /// Takes what the runtime wrote into the console ring.
    fn drain_ring(&mut self) -> Result<(), Stop> {
        let Some(slot) = self.slot.as_ref() else {
            return Ok(());
        };
        let head = slot.get(&R_RING, layout::RING_FIELDS[0].offset)?;
        let n = head.wrapping_sub(self.ring_tail);
        if n == 0 {
            return Ok(());
        }
        if n > RING_SIZE {
            return Err(abi(format!(
                "console ring head {head:#x} is {n} bytes past the host's tail {:#x} (the ring \
                 holds {RING_SIZE})",
                self.ring_tail
            )));
        }
        let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
        for (i, b) in buf.iter_mut().enumerate() {
            let pos = (self.ring_tail + i as u64) & (RING_SIZE - 1);
            let mut one = [0u8; 1];
            slot.read(R_RING.gpa() + RING_DATA + pos, &mut one)?;
            *b = one[0];
        }
        self.output.extend_from_slice(&buf);
        self.ring_tail = head;
        slot.set(&R_RING, layout::RING_FIELDS[1].offset, head)?;
        Ok(())
    }

    fn install(&mut self, ctx: &mut VmContext<'_>) -> Result<(), String> {
        let sites = match wedge::read_sites(ctx.kernel).map_err(|e| e.to_string())? {
            Some(s) => s,
            None => {
                return Err(
                    "the kernel has no .afterburn section: the kvm backend runs \
                            afterburnt kernels (burn its objects with the afterburner, \
                            docs/examples.md); --backend bare runs it as it is"
                        .into(),
                )
            }
        };
        let elf = ElfImage::parse(ctx.kernel).map_err(|e| e.to_string())?;
        self.segments = elf
            .segments
            .iter()
            .map(|s| (s.vaddr, s.paddr, s.data.len() as u64))
            .collect();
        let mut image = GuestImage {
            mem: ctx.memory,
            segments: &self.segments,
        };
        let plan = wedge::kvm::plan(&image, &sites).map_err(|e| e.to_string())?;
        for (addr, bytes) in &plan.boot {
            image
                .write(*addr, bytes)
                .map_err(|e| format!("site at {addr:#x}: {e}"))?;
        }
        let slot = Slot::new().map_err(|e| e.to_string())?;
        let e = |e: SlotError| e.to_string();
        slot.write(R_TEXT.gpa(), runtime::BLOB_TEXT).map_err(e)?;
        slot.write(R_DATA.gpa(), runtime::BLOB_DATA).map_err(e)?;
        slot.write(R_CPL0.gpa(), runtime::BLOB_CPL0).map_err(e)?;
        slot.write(R_SYSCALL.gpa(), runtime::BLOB_SYSCALL)
            .map_err(e)?;
        slot.write(R_THUNKS.gpa(), &plan.thunks).map_err(e)?;
        cpu::write_tables(&slot).map_err(e)?;
        paging::write_hole_tables(&slot, hole_page_flags).map_err(e)?;
        slot.register(ctx.vm).map_err(e)?;
        self.final_form = plan.final_form;
        self.slot = Some(slot);
        Ok(())
    }

    /// The first site ran at CPL0: switch the kernel to CPL3.
    fn start(&mut self, ctx: &mut VmContext<'_>) -> Result<Disposition, Stop> {
        if self.phase != Phase::Boot {
            return Err(abi(
                "a site's boot form ran after the switch to CPL3 (the guest \
                            rewrote its code?)",
            ));
        }
        let mut regs = self.get_regs(ctx)?;
        let sregs = self.get_sregs(ctx)?;
        let site = regs.rip.wrapping_sub(2);
        if !self.final_form.iter().any(|(a, _)| *a == site) {
            return Err(abi(format!(
                "out to the start port {START_PORT:#x} at {:#x}, which is not an annotated site",
                regs.rip
            )));
        }
        if sregs.cs.dpl != 0 || sregs.efer & EFER_LMA == 0 || sregs.cs.l != 1 {
            return Err(abi(format!(
                "the first site ({site:#x}) ran outside 64-bit CPL0 code (cs dpl {}, l {}, \
                 efer {:#x}): the kvm backend needs the kernel in long mode before its first site",
                sregs.cs.dpl, sregs.cs.l, sregs.efer
            )));
        }
        let slot = self.slot()?;
        // The virtual CPU.
        let set = |n: &str, v: u64| slot.set(&R_VCPU, vf(n), v);
        set("VIF", regs.rflags & RFLAGS_IF)?;
        for (n, v) in [
            ("CR0", sregs.cr0),
            ("CR2", sregs.cr2),
            ("CR3", sregs.cr3),
            ("CR4", sregs.cr4),
            ("CR8", sregs.cr8),
            ("EFER", sregs.efer),
            ("GDTR_BASE", sregs.gdt.base),
            ("GDTR_LIMIT", u64::from(sregs.gdt.limit)),
            ("IDTR_BASE", sregs.idt.base),
            ("IDTR_LIMIT", u64::from(sregs.idt.limit)),
            ("MODE", 0),
            ("STARTED", 1),
        ] {
            set(n, v)?;
        }
        self.set_pending_any(false)?;
        // Console batching interval: 2 ms of TSC (1 ms if KVM does not say the frequency).
        let tsc_khz = ctx.vcpu.get_tsc_khz().unwrap_or(1_000_000);
        self.vset("FLUSH_TSC", u64::from(tsc_khz) * 2)?;
        let sel = vf("SEL");
        for (i, s) in [
            &sregs.es, &sregs.cs, &sregs.ss, &sregs.ds, &sregs.fs, &sregs.gs, &sregs.ldt, &sregs.tr,
        ]
        .iter()
        .enumerate()
        {
            slot.set(&R_VCPU, sel + 8 * i as u64, u64::from(s.selector))?;
        }
        let mut msrs = Msrs::from_entries(
            &CAPTURED_MSRS
                .iter()
                .map(|(index, _)| kvm_msr_entry {
                    index: *index,
                    ..Default::default()
                })
                .collect::<Vec<_>>(),
        )
        .map_err(|e| abi(format!("MSR list: {e:?}")))?;
        let n = ctx
            .vcpu
            .get_msrs(&mut msrs)
            .map_err(|e| kvm_err("KVM_GET_MSRS", e))?;
        for (entry, (_, field)) in msrs.as_slice().iter().take(n).zip(CAPTURED_MSRS) {
            set(field, entry.data)?;
        }
        // The cpuid table, from the vCPU's own CPUID (what a trapped cpuid would answer).
        let cpuid = ctx
            .vcpu
            .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| kvm_err("KVM_GET_CPUID2", e))?;
        let entries = cpuid.as_slice();
        let count = (entries.len() as u64).min(CPUID_MAX);
        for (i, c) in entries
            .iter()
            .take(usize::try_from(count).unwrap_or(0))
            .enumerate()
        {
            let at = R_CPUID.gpa() + CPUID_ENTRIES + i as u64 * CPUID_ENTRY_SIZE;
            let words = [
                c.function,
                c.index,
                c.flags & 1,
                c.eax,
                c.ebx,
                c.ecx,
                c.edx,
                0,
            ];
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            slot.write(at, &bytes)?;
        }
        slot.set(&R_CPUID, 0, count)?;
        // Every site's final form.
        let mut image = GuestImage {
            mem: ctx.memory,
            segments: &self.segments,
        };
        for (addr, bytes) in &self.final_form {
            image
                .write(*addr, bytes)
                .map_err(|e| abi(format!("site at {addr:#x}: {e}")))?;
        }
        // Shadow page tables, then the CPU at CPL3.
        let paging = self.paging()?;
        let shadow = Shadow::new(slot, paging)?;
        let root = shadow.kernel_root;
        self.shadow = Some(shadow);
        self.mode = Mode::Kernel;
        let msrs = Msrs::from_entries(&[
            kvm_msr_entry {
                index: MSR_LSTAR,
                data: R_SYSCALL.va(),
                ..Default::default()
            },
            kvm_msr_entry {
                index: MSR_STAR,
                data: u64::from(layout::SEL_CS0) << 32,
                ..Default::default()
            },
            kvm_msr_entry {
                index: MSR_SFMASK,
                data: RFLAGS_IF | RFLAGS_TF | 0x400 | RFLAGS_NT | 0x4_0000 | RFLAGS_IOPL,
                ..Default::default()
            },
        ])
        .map_err(|e| abi(format!("MSR list: {e:?}")))?;
        ctx.vcpu
            .set_msrs(&msrs)
            .map_err(|e| kvm_err("KVM_SET_MSRS", e))?;
        let new = self.kernel_sregs(sregs, root)?;
        self.set_sregs(ctx, &new)?;
        regs.rip = site;
        regs.rflags = (regs.rflags & RFLAGS_GUEST) | RFLAGS_IF | 2;
        self.set_regs(ctx, &regs)?;
        self.phase = Phase::Running;
        Ok(Disposition::Handled)
    }

    /// Real segment and control state for the guest kernel at CPL3 on shadow root `root`.
    fn kernel_sregs(&self, mut s: kvm_sregs, root: u64) -> Result<kvm_sregs, Stop> {
        let cr4 = self.vget("CR4")?;
        let efer = self.vget("EFER")?;
        s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
        s.cr3 = root;
        s.cr4 = CR4_PAE | (cr4 & (CR4_OSFXSR | CR4_OSXMMEXCPT | CR4_OSXSAVE));
        // NXE always: the hole's own tables use NX; guest NX bits reach the shadow only if the
        // guest enabled NXE (paging::walk).
        let _ = efer;
        s.efer = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
        s.gdt.base = R_GDT.va();
        s.gdt.limit = cpu::gdt_limit();
        s.idt.base = R_IDT_K.va();
        s.idt.limit = 0xfff;
        s.tr = tss_segment(SEL_TSS, R_TSS.va());
        s.ldt = null_segment();
        s.cs = segment(SEL_CS3, code64(3) | (1 << 40));
        s.ss = segment(SEL_SS3, data(3) | (1 << 40));
        s.ds = s.ss;
        s.es = s.ss;
        s.fs = kvm_segment {
            base: self.vget("FS_BASE")?,
            ..null_segment()
        };
        s.gs = kvm_segment {
            base: self.vget("GS_BASE")?,
            ..null_segment()
        };
        Ok(s)
    }

    fn hypercall(&mut self, ctx: &mut VmContext<'_>) -> Result<Disposition, Stop> {
        let regs = self.get_regs(ctx)?;
        let from = regs.rip.wrapping_sub(2);
        if self.phase != Phase::Running
            || self.mode != Mode::Kernel
            || !(R_TEXT.contains_va(from) || R_THUNKS.contains_va(from))
        {
            return Err(abi(format!(
                "hypercall port {HC_PORT:#x} written at {:#x}, outside the wedge's code (or by a \
                 user task, or before the switch to CPL3)",
                regs.rip
            )));
        }
        self.counters.hypercalls += 1;
        let slot = self.slot()?;
        let nr = slot.get(&R_HCALL, hc("NR"))?;
        let arg = |i: u64| slot.get(&R_HCALL, hc("ARG") + 8 * i);
        let (a0, a1, a2) = (arg(0)?, arg(1)?, arg(2)?);
        match nr {
            n if n == hc_number("CONSOLE_FLUSH") => {
                self.counters.console_flushes += 1;
                Ok(Disposition::Handled)
            }
            n if n == hc_number("HALT") => {
                self.counters.halts += 1;
                ctx.vcpu
                    .set_mp_state(kvm_mp_state {
                        mp_state: KVM_MP_STATE_HALTED,
                    })
                    .map_err(|e| kvm_err("KVM_SET_MP_STATE", e))?;
                Ok(Disposition::Handled)
            }
            n if n == hc_number("CR3_WRITE") => {
                self.counters.cr3_writes += 1;
                self.flush_all(ctx)?;
                Ok(Disposition::Handled)
            }
            n if n == hc_number("CR0_WRITE") || n == hc_number("CR4_WRITE") => {
                self.flush_all(ctx)?;
                Ok(Disposition::Handled)
            }
            n if n == hc_number("INVLPG") => {
                self.counters.invlpgs += 1;
                self.invlpg(ctx, a0)?;
                Ok(Disposition::Handled)
            }
            n if n == hc_number("IRET_USER") => self.iret_user(ctx, regs),
            n if n == hc_number("WRMSR") => self.wrmsr(ctx, a0, a1),
            n if n == hc_number("RDMSR") => Err(abi(format!(
                "the guest read MSR {:#x}, which the kvm backend does not provide",
                a0 & 0xffff_ffff
            ))),
            n if n == hc_number("FATAL") => Err(self.fatal(a0, a1, a2)),
            _ => Err(abi(format!("unknown hypercall number {nr:#x}"))),
        }
    }

    fn fatal(&self, why: u64, a: u64, b: u64) -> Stop {
        match why {
            FATAL_NO_GATE => abi(format!(
                "the guest kernel has no usable IDT gate for vector {a} (at {b:#x}): a real CPU \
                 would triple-fault here"
            )),
            FATAL_DOUBLE => abi(format!(
                "page fault in the wedge while it delivered an event to the guest (vector {a}, \
                 at {b:#x}): the guest kernel's stack or IDT is not mapped"
            )),
            2 => abi(format!(
                "exception {a} in the wedge's runtime at {b:#x} (the guest corrupted the wedge \
                 or the virtual CPU?)"
            )),
            3 => abi(format!(
                "the wedge's interrupt nesting ran out of stack (vector {a} at {b:#x})"
            )),
            _ => abi(format!(
                "the wedge reported fatal error {why:#x} ({a:#x}, {b:#x})"
            )),
        }
    }

    /// Loads shadow root `root` as the real CR3.
    fn load_root(&self, ctx: &mut VmContext<'_>, root: u64) -> Result<(), Stop> {
        let mut s = self.get_sregs(ctx)?;
        s.cr3 = root;
        self.set_sregs(ctx, &s)
    }

    /// The vCPU's general registers at this exit.
    fn get_regs(&self, ctx: &mut VmContext<'_>) -> Result<kvm_regs, Stop> {
        if self.sync_regs {
            Ok(ctx.vcpu.sync_regs().regs)
        } else {
            ctx.vcpu.get_regs().map_err(|e| kvm_err("KVM_GET_REGS", e))
        }
    }

    /// The vCPU's segment and control registers at this exit.
    fn get_sregs(&self, ctx: &mut VmContext<'_>) -> Result<kvm_sregs, Stop> {
        if self.sync_regs {
            Ok(ctx.vcpu.sync_regs().sregs)
        } else {
            ctx.vcpu
                .get_sregs()
                .map_err(|e| kvm_err("KVM_GET_SREGS", e))
        }
    }

    /// Sets the general registers (applied when the vCPU runs again).
    fn set_regs(&self, ctx: &mut VmContext<'_>, r: &kvm_regs) -> Result<(), Stop> {
        if self.sync_regs {
            ctx.vcpu.sync_regs_mut().regs = *r;
            ctx.vcpu.set_sync_dirty_reg(SyncReg::Register);
            Ok(())
        } else {
            ctx.vcpu.set_regs(r).map_err(|e| kvm_err("KVM_SET_REGS", e))
        }
    }

    /// Sets the segment and control registers (applied when the vCPU runs again).
    fn set_sregs(&self, ctx: &mut VmContext<'_>, s: &kvm_sregs) -> Result<(), Stop> {
        if self.sync_regs {
            ctx.vcpu.sync_regs_mut().sregs = *s;
            ctx.vcpu.set_sync_dirty_reg(SyncReg::SystemRegister);
            Ok(())
        } else {
            ctx.vcpu
                .set_sregs(s)
                .map_err(|e| kvm_err("KVM_SET_SREGS", e))
        }
    }

    /// A guest TLB flush of everything (CR3 write, paging-mode change): fresh shadow roots.
    fn flush_all(&mut self, ctx: &mut VmContext<'_>) -> Result<(), Stop> {
        self.reset_shadow(ctx, false)
    }

    /// Fresh shadow roots (recycling the pool if `force` or it is half used), loaded if the
    /// guest kernel runs.
    fn reset_shadow(&mut self, ctx: &mut VmContext<'_>, force: bool) -> Result<(), Stop> {
        let paging = self.paging()?;
        let slot = self.slot.as_ref().ok_or_else(|| abi("no wedge"))?;
        let shadow = self.shadow.as_mut().ok_or_else(|| abi("no shadow"))?;
        if shadow.reset(slot, paging, force)? {
            self.counters.pool_recycles += 1;
            slot.zap(ctx.vm)?;
        }
        let root = shadow.kernel_root;
        if self.mode == Mode::Kernel {
            self.load_root(ctx, root)?;
        }
        Ok(())
    }

    /// Makes sure the pool can serve an operation: recycles it (fresh roots) when it runs low.
    /// Returns whether it did (the caller's shadow state is then new).
    fn ensure_room(&mut self, ctx: &mut VmContext<'_>) -> Result<bool, Stop> {
        let low = !self
            .shadow
            .as_ref()
            .ok_or_else(|| abi("no shadow"))?
            .has_room(Shadow::RESERVE);
        if low {
            self.reset_shadow(ctx, true)?;
        }
        Ok(low)
    }

    fn invlpg(&mut self, ctx: &mut VmContext<'_>, va: u64) -> Result<(), Stop> {
        if va >= HOLE_VA || !canonical(va) {
            return Ok(());
        }
        if self.ensure_room(ctx)? {
            // Fresh roots hold nothing stale.
            return Ok(());
        }
        let slot = self.slot.as_ref().ok_or_else(|| abi("no wedge"))?;
        let shadow = self.shadow.as_mut().ok_or_else(|| abi("no shadow"))?;
        let k = shadow.sync_region(slot, ctx.memory, View::Kernel, va)?;
        shadow.sync_region(slot, ctx.memory, View::User, va)?;
        if let Some(root) = k {
            self.load_root(ctx, root)?;
        }
        Ok(())
    }

    fn wrmsr(&mut self, ctx: &mut VmContext<'_>, msr: u64, v: u64) -> Result<Disposition, Stop> {
        let msr = u32::try_from(msr & 0xffff_ffff).unwrap_or(0);
        match msr {
            MSR_FS_BASE | MSR_GS_BASE => {
                if !canonical(v) {
                    return Err(abi(format!("wrmsr {msr:#x}: {v:#x} is not canonical")));
                }
                let msrs = Msrs::from_entries(&[kvm_msr_entry {
                    index: msr,
                    data: v,
                    ..Default::default()
                }])
                .map_err(|e| abi(format!("MSR list: {e:?}")))?;
                ctx.vcpu
                    .set_msrs(&msrs)
                    .map_err(|e| kvm_err("KVM_SET_MSRS", e))?;
                Ok(Disposition::Handled)
            }
            MSR_EFER => {
                let allowed = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
                if v & !allowed != 0 || v & EFER_LME == 0 {
                    return Err(abi(format!(
                        "wrmsr EFER {v:#x}: the kvm backend supports SCE and NXE changes in long \
                         mode only"
                    )));
                }
                self.flush_all(ctx)?;
                Ok(Disposition::Handled)
            }
            _ => Err(abi(format!(
                "the guest wrote MSR {msr:#x} ({v:#x}), which the kvm backend does not provide"
            ))),
        }
    }

    /// Reads a CPU frame (with an error code if `with_error`) at `rsp` in the wedge's stacks.
    fn cpl0_frame(&self, rsp: u64, with_error: bool) -> Result<(Frame, u64), Stop> {
        let words = if with_error { 6 } else { 5 };
        if !R_STACK.contains_va(rsp) || !R_STACK.contains_va(rsp + 8 * words - 1) {
            return Err(abi(format!(
                "a CPL0 stub ran on stack {rsp:#x}, outside the wedge's stacks (the guest \
                 changed TSS.rsp0?)"
            )));
        }
        let slot = self.slot()?;
        let gpa = R_STACK.gpa() + (rsp - R_STACK.va());
        let w = |i: u64| slot.read_u64(gpa + 8 * i);
        let (error, b) = if with_error { (w(0)?, 1) } else { (0, 0) };
        Ok((
            Frame {
                rip: w(b)?,
                cs: w(b + 1)?,
                rflags: w(b + 2)?,
                rsp: w(b + 3)?,
                ss: w(b + 4)?,
            },
            error,
        ))
    }

    /// An exit stub ran: an event the host handles.
    fn stub_exit(&mut self, ctx: &mut VmContext<'_>) -> Result<Disposition, Stop> {
        let mut regs = self.get_regs(ctx)?;
        let sregs = self.get_sregs(ctx)?;
        let stub = regs.rip.wrapping_sub(2);
        let base = R_CPL0.va() + STUBS_X;
        if self.phase != Phase::Running
            || sregs.cs.dpl != 0
            || stub < base
            || stub >= base + 256 * STUB_SLOT
            || !(stub - base).is_multiple_of(STUB_SLOT)
        {
            return Err(abi(format!(
                "stub port {STUB_PORT:#x} written at {:#x} (cpl {}), not by an exit stub",
                regs.rip, sregs.cs.dpl
            )));
        }
        let vector = (stub - base) / STUB_SLOT;
        self.counters.stub_exits += 1;
        let (frame, error) = self.cpl0_frame(regs.rsp, has_error_code(vector))?;
        match self.mode {
            Mode::Kernel => match vector {
                14 => self.kernel_page_fault(ctx, &mut regs, sregs.cr2, error, frame),
                2 => Err(abi(
                    "an NMI arrived (the kvm backend does not reflect NMIs)",
                )),
                8 => Err(Stop(EndReason::Shutdown)),
                _ => Err(abi(format!(
                    "machine check or unexpected exit stub {vector} in kernel mode at {:#x}",
                    frame.rip
                ))),
            },
            Mode::User => {
                self.counters.user_events += 1;
                self.user_event(ctx, &regs, vector, error, sregs.cr2, frame)
            }
        }
    }

    fn in_runtime(va: u64) -> bool {
        R_TEXT.contains_va(va) || R_THUNKS.contains_va(va)
    }

    fn kernel_page_fault(
        &mut self,
        ctx: &mut VmContext<'_>,
        regs: &mut kvm_regs,
        cr2: u64,
        error: u64,
        frame: Frame,
    ) -> Result<Disposition, Stop> {
        self.counters.kernel_page_faults += 1;
        let access = Access {
            write: error & paging::PF_W != 0,
            fetch: error & paging::PF_I != 0,
            user: false,
        };
        let what = if access.fetch {
            "executed"
        } else if access.write {
            "wrote"
        } else {
            "read"
        };
        if cr2 >= HOLE_VA {
            return Err(abi(format!(
                "the guest kernel {what} the wedge's memory at {cr2:#x} (at {:#x})",
                frame.rip
            )));
        }
        let p = self.paging()?;
        match paging::walk(ctx.memory, p.cr3, cr2, p.nxe) {
            Ok(t) if paging::permits(&t, access, p.wp) => {
                self.hidden_fault(ctx, View::Kernel, cr2, frame.rip, &t, access.write)?;
                Ok(Disposition::Handled)
            }
            Ok(_) | Err(WalkError::NotPresent) => {
                let present = paging::walk(ctx.memory, p.cr3, cr2, p.nxe).is_ok();
                if Self::in_runtime(frame.rip) {
                    return Err(self.fatal(FATAL_DOUBLE, 14, frame.rip));
                }
                self.counters.guest_faults += 1;
                self.vset("PF_ERROR", paging::error_code(access, present, p.nxe))?;
                self.vset("PF_ADDR", cr2)?;
                // Hand it to the runtime through vector 14's bounce stub (same CPU frame).
                regs.rip = R_CPL0.va() + STUBS_K + 14 * STUB_SLOT;
                self.set_regs(ctx, regs)?;
                Ok(Disposition::Handled)
            }
            Err(WalkError::Bad(why)) => Err(abi(format!("at {:#x}: {why}", frame.rip))),
        }
    }

    /// A fault the guest's tables allow: fill the shadow (and the guest's A/D bits).
    fn hidden_fault(
        &mut self,
        ctx: &mut VmContext<'_>,
        view: View,
        va: u64,
        rip: u64,
        t: &paging::Translation,
        write: bool,
    ) -> Result<(), Stop> {
        self.counters.hidden_faults += 1;
        if self.last_fill == Some((va, rip)) {
            self.repeated_fills += 1;
            if self.repeated_fills > 8 {
                return Err(abi(format!(
                    "filling the shadow page tables for {va:#x} (at {rip:#x}) does not end the \
                     fault"
                )));
            }
        } else {
            self.last_fill = Some((va, rip));
            self.repeated_fills = 0;
        }
        paging::set_accessed(ctx.memory, t, write).map_err(|e| abi(format!("{e:?}")))?;
        self.ensure_room(ctx)?;
        let slot = self.slot.as_ref().ok_or_else(|| abi("no wedge"))?;
        let shadow = self.shadow.as_mut().ok_or_else(|| abi("no shadow"))?;
        shadow.fill(slot, ctx.memory, view, va)?;
        // A write to a page the shadow shows read-only (clean) needs the upgrade in place too.
        if write {
            shadow.sync_region(slot, ctx.memory, view, va)?;
        }
        Ok(())
    }
}

/// Permissions of the hole's pages (None: not mapped) in each view.
fn hole_page_flags(view: View, off: u64) -> Option<u64> {
    use paging::{NX, U, W};
    let va = HOLE_VA + off;
    let in_r = |r: &layout::Region| r.contains_va(va);
    match view {
        View::Kernel => {
            if in_r(&R_TEXT) || in_r(&R_THUNKS) {
                Some(U)
            } else if in_r(&R_CPUID) {
                Some(U | NX)
            } else if in_r(&R_VCPU)
                || in_r(&R_HCALL)
                || in_r(&R_RING)
                || in_r(&R_DATA)
                || in_r(&R_STACK)
                || in_r(&R_TSS)
            {
                Some(U | W | NX)
            } else if in_r(&R_GDT) || in_r(&R_IDT_K) || in_r(&R_IDT_U) {
                Some(NX)
            } else if in_r(&R_CPL0) {
                Some(0)
            } else if in_r(&R_SYSCALL) {
                Some(U)
            } else {
                None
            }
        }
        View::User => {
            if in_r(&R_STACK) || in_r(&R_TSS) {
                Some(W | NX)
            } else if in_r(&R_GDT) || in_r(&R_IDT_K) || in_r(&R_IDT_U) {
                Some(NX)
            } else if in_r(&R_CPL0) {
                Some(0)
            } else if in_r(&R_SYSCALL) {
                Some(U)
            } else {
                None
            }
        }
    }
}

impl Backend for KvmBackend {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn prepare(&mut self, ctx: &mut VmContext<'_>) -> Result<(), BackendError> {
        self.install(ctx).map_err(|detail| BackendError::Prepare {
            backend: "kvm",
            detail,
        })?;
        // Register state at every exit without separate ioctls (each costs 20-30 us on a PVM
        // host, docs/benchmarks.md), where KVM offers it.
        let want = SyncReg::Register as i32 | SyncReg::SystemRegister as i32;
        if ctx.vm.check_extension_int(Cap::SyncRegs) & want == want {
            ctx.vcpu.set_sync_valid_reg(SyncReg::Register);
            ctx.vcpu.set_sync_valid_reg(SyncReg::SystemRegister);
            self.sync_regs = true;
        }
        self.phase = Phase::Boot;
        Ok(())
    }

    fn port_write(&mut self, port: u16, _data: &[u8], ctx: &mut VmContext<'_>) -> Disposition {
        let t0 = std::time::Instant::now();
        let r = self.drain_ring().and_then(|()| match port {
            START_PORT => self.start(ctx),
            HC_PORT if self.phase != Phase::New => self.hypercall(ctx),
            STUB_PORT if self.phase != Phase::New => self.stub_exit(ctx),
            SYSCALL_PORT if self.phase != Phase::New => self.syscall(ctx),
            _ => Ok(Disposition::NotMine),
        });
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match port {
            HC_PORT => self.counters.hypercall_ns += ns,
            STUB_PORT => self.counters.stub_ns += ns,
            SYSCALL_PORT => self.counters.syscall_ns += ns,
            START_PORT => self.counters.start_ns += ns,
            _ => {}
        }
        match r {
            Ok(d) => d,
            Err(Stop(reason)) => Disposition::End(reason),
        }
    }

    fn take_output(&mut self) -> Vec<u8> {
        let _ = self.drain_ring();
        std::mem::take(&mut self.output)
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let c = self.counters;
        let mut v = vec![
            ("hypercalls", c.hypercalls),
            ("halts", c.halts),
            ("console_flushes", c.console_flushes),
            ("cr3_writes", c.cr3_writes),
            ("invlpgs", c.invlpgs),
            ("kernel_page_faults", c.kernel_page_faults),
            ("hidden_page_faults", c.hidden_faults),
            ("guest_page_faults", c.guest_faults),
            ("user_entries", c.user_entries),
            ("user_events", c.user_events),
            ("syscalls", c.syscalls),
            ("pool_recycles", c.pool_recycles),
            ("stub_exits", c.stub_exits),
            ("host_ns_start", c.start_ns),
            ("host_ns_hypercalls", c.hypercall_ns),
            ("host_ns_stub_exits", c.stub_ns),
            ("host_ns_syscalls", c.syscall_ns),
        ];
        if let Some(s) = &self.shadow {
            v.push(("shadow_pages", s.pages_allocated));
            v.push(("shadow_path_copies", s.path_copies));
            v.push(("shadow_fills", s.fills));
        }
        if let Some(slot) = &self.slot {
            for (name, field) in [
                ("wedge_irqs", "N_IRQ"),
                ("wedge_delivered", "N_DELIVERED"),
                ("wedge_exceptions", "N_EXCEPTIONS"),
                ("wedge_hypercalls", "N_HYPERCALLS"),
                ("wedge_ports_local", "N_PORT_LOCAL"),
                ("wedge_ports_forwarded", "N_PORT_FORWARDED"),
                ("wedge_cpuid_local", "N_CPUID_LOCAL"),
                ("wedge_cpuid_forwarded", "N_CPUID_FORWARDED"),
                ("wedge_serial_bytes", "N_SERIAL_BYTES"),
                ("wedge_delay_writes", "N_DELAY_WRITES"),
            ] {
                if let Ok(n) = slot.get(&R_VCPU, vf(field)) {
                    v.push((name, n));
                }
            }
        }
        v
    }
}
