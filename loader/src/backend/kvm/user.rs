//! Guest user tasks: entering one (the runtime's `iretq` to CPL3 becomes the `IRET_USER`
//! hypercall), events while it runs (every vector goes to an exit stub), its system calls
//! (`SYSCALL_PORT`), and reflecting those to the guest kernel's own handlers with the privilege
//! change a real CPU makes (stack from the guest's TSS, frame with the user's CS/SS).
//!
//! The guest kernel and its user tasks both run at CPL3; what separates them is the address
//! space: user tasks run on the *user* shadow root, where nothing of the guest kernel and only
//! the CPL0 parts of the wedge are mapped, with the user-mode IDT and TSS (which allows only the
//! system-call port).

use kvm_bindings::{kvm_regs, kvm_segment};
use vm_memory::{Bytes, GuestAddress};
use wedge::layout::{
    hc, vcpu as vf, HOLE_VA, R_GDT, R_HCALL, R_IDT_U, R_SYSCALL, R_TSS, R_VCPU, SEL_CS0,
    SEL_TSS_USER, TSS_USER,
};

use super::cpu::{null_segment, segment, stack_top, tss_segment, user_descriptor_ok};
use super::paging::{self, Access, View, WalkError};
use super::{
    abi, canonical, has_error_code, Disposition, Frame, KvmBackend, Mode, Stop, VmContext,
    RFLAGS_GUEST, RFLAGS_IF, RFLAGS_IOPL, RFLAGS_RF, RFLAGS_TF, RFLAGS_VM,
};
use crate::end::EndReason;
use crate::vstate::memory::GuestMemory;

impl KvmBackend {
    /// Copies guest virtual memory (the guest kernel's view) into `buf`.
    fn read_virt(&self, mem: &GuestMemory, va: u64, buf: &mut [u8]) -> Result<(), String> {
        let p = self.paging().map_err(|_| "no virtual CPU".to_string())?;
        let mut done = 0;
        while done < buf.len() {
            let a = va.wrapping_add(done as u64);
            let t = paging::walk(mem, p.cr3, a, p.nxe)
                .map_err(|e| format!("guest address {a:#x} does not translate ({e:?})"))?;
            let in_page = usize::try_from(0x1000 - (a & 0xfff)).unwrap_or(0x1000);
            let n = in_page.min(buf.len() - done);
            mem.read_slice(
                &mut buf[done..done + n],
                GuestAddress(t.frame + (a & 0xfff)),
            )
            .map_err(|_| format!("guest address {a:#x} maps outside guest RAM"))?;
            done += n;
        }
        Ok(())
    }

    fn read_virt_u64(&self, mem: &GuestMemory, va: u64) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.read_virt(mem, va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes guest virtual memory as the guest kernel would (a write access: the page must be
    /// present and writable for the kernel; accessed and dirty bits are set).
    fn write_virt(&self, mem: &GuestMemory, va: u64, bytes: &[u8]) -> Result<(), String> {
        let p = self.paging().map_err(|_| "no virtual CPU".to_string())?;
        let mut done = 0;
        while done < bytes.len() {
            let a = va.wrapping_add(done as u64);
            let t = paging::walk(mem, p.cr3, a, p.nxe)
                .map_err(|e| format!("guest address {a:#x} does not translate ({e:?})"))?;
            let w = Access {
                write: true,
                fetch: false,
                user: false,
            };
            if !paging::permits(&t, w, p.wp) {
                return Err(format!("guest address {a:#x} is not writable"));
            }
            paging::set_accessed(mem, &t, true).map_err(|e| format!("{e:?}"))?;
            let in_page = usize::try_from(0x1000 - (a & 0xfff)).unwrap_or(0x1000);
            let n = in_page.min(bytes.len() - done);
            mem.write_slice(&bytes[done..done + n], GuestAddress(t.frame + (a & 0xfff)))
                .map_err(|_| format!("guest address {a:#x} maps outside guest RAM"))?;
            done += n;
        }
        Ok(())
    }

    /// The 8-byte descriptor `sel` of the guest's GDT.
    fn guest_descriptor(&self, mem: &GuestMemory, sel: u64) -> Result<u64, Stop> {
        let base = self.vget("GDTR_BASE")?;
        let limit = self.vget("GDTR_LIMIT")?;
        let index = sel & 0xfff8;
        if sel & 4 != 0 || index == 0 || index + 7 > limit {
            return Err(abi(format!(
                "selector {sel:#x} is not in the guest's GDT (limit {limit:#x})"
            )));
        }
        self.read_virt_u64(mem, base + index)
            .map_err(|e| abi(format!("reading GDT entry {sel:#x}: {e}")))
    }

    /// The guest kernel returns to a user task (`iretq` with an RPL 3 code selector).
    pub(super) fn iret_user(
        &mut self,
        ctx: &mut VmContext<'_>,
        regs: kvm_regs,
    ) -> Result<Disposition, Stop> {
        let slot = self.slot()?;
        let arg = |i: u64| slot.get(&R_HCALL, hc("ARG") + 8 * i);
        let frame = Frame {
            rip: arg(0)?,
            cs: arg(1)?,
            rflags: arg(2)?,
            rsp: arg(3)?,
            ss: arg(4)?,
        };
        let bad = |why: String| abi(format!("iretq to user mode ({frame:x?}): {why}"));
        let (Ok(cs), Ok(ss)) = (u16::try_from(frame.cs), u16::try_from(frame.ss)) else {
            return Err(bad("CS and SS must be 16-bit selectors".into()));
        };
        if cs & 3 != 3 || ss & 3 != 3 {
            return Err(bad("CS and SS must have RPL 3".into()));
        }
        if !canonical(frame.rip) || !canonical(frame.rsp) {
            return Err(bad("non-canonical rip or rsp".into()));
        }
        let max = u64::from(SEL_CS0 & !7);
        if frame.cs & 0xfff8 >= max || frame.ss & 0xfff8 >= max {
            return Err(bad(format!(
                "selectors at or above {max:#x} are the wedge's"
            )));
        }
        let cs_d = self.guest_descriptor(ctx.memory, frame.cs)?;
        let ss_d = self.guest_descriptor(ctx.memory, frame.ss)?;
        if !user_descriptor_ok(cs_d, true) || !user_descriptor_ok(ss_d, false) {
            return Err(bad(format!(
                "descriptors {cs_d:#018x} / {ss_d:#018x} are not DPL 3 64-bit code / writable data"
            )));
        }
        // The real GDT carries the guest's user descriptors at their own indices.
        slot.write_u64(R_GDT.gpa() + (frame.cs & 0xfff8), cs_d)?;
        slot.write_u64(R_GDT.gpa() + (frame.ss & 0xfff8), ss_d)?;
        let vif = frame.rflags & RFLAGS_IF != 0;
        if vif {
            if let Some(v) = self.take_pending()? {
                // The interrupt arrives as the task starts.
                return self.deliver_to_kernel(ctx, regs, v, None, frame, true, 0);
            }
        }
        self.enter_user(ctx, regs, frame, (cs, cs_d), (ss, ss_d))
    }

    /// PENDING_ANY and the sti hook that goes with it (wedge.c, set_any()).
    pub(super) fn set_pending_any(&self, any: bool) -> Result<(), Stop> {
        let slot = self.slot()?;
        slot.set(&R_VCPU, vf("PENDING_ANY"), u64::from(any))?;
        let hook = if any {
            "wedge_hook_deliver"
        } else {
            "wedge_hook_ret"
        };
        slot.set(&R_VCPU, vf("STI_HOOK"), wedge::runtime::sym(hook))?;
        Ok(())
    }

    fn take_pending(&self) -> Result<Option<u64>, Stop> {
        let slot = self.slot()?;
        let base = vf("PENDING");
        let mut found = None;
        let mut any = 0;
        for i in 0..4u64 {
            let w = slot.get(&R_VCPU, base + 8 * i)?;
            if found.is_none() && w != 0 {
                let bit = u64::from(w.trailing_zeros());
                found = Some(i * 64 + bit);
                let rest = w & !(1 << bit);
                slot.set(&R_VCPU, base + 8 * i, rest)?;
                any |= rest;
            } else {
                any |= w;
            }
        }
        self.set_pending_any(any != 0)?;
        Ok(found)
    }

    fn pend(&self, v: u64) -> Result<(), Stop> {
        let slot = self.slot()?;
        let at = vf("PENDING") + 8 * (v / 64);
        let w = slot.get(&R_VCPU, at)?;
        slot.set(&R_VCPU, at, w | 1 << (v % 64))?;
        self.set_pending_any(true)
    }

    fn enter_user(
        &mut self,
        ctx: &mut VmContext<'_>,
        mut regs: kvm_regs,
        frame: Frame,
        (cs, cs_d): (u16, u64),
        (ss, ss_d): (u16, u64),
    ) -> Result<Disposition, Stop> {
        self.ensure_room(ctx)?;
        let slot = self.slot.as_ref().ok_or_else(|| abi("no wedge"))?;
        let shadow = self.shadow.as_mut().ok_or_else(|| abi("no shadow"))?;
        let root = shadow.root(slot, View::User)?;
        // Nothing may still hold a stack area when the kernel leaves.
        slot.write_u64(R_TSS.gpa() + 4, stack_top())?;
        let mut s = self.get_sregs(ctx)?;
        s.cr3 = root;
        s.idt.base = R_IDT_U.va();
        s.idt.limit = 0xfff;
        s.tr = tss_segment(SEL_TSS_USER, R_TSS.va() + TSS_USER);
        s.cs = segment(cs, cs_d | (1 << 40));
        s.ss = segment(ss, ss_d | (1 << 40));
        s.ds = null_segment();
        s.es = null_segment();
        s.fs = kvm_segment {
            base: self.vget("FS_BASE")?,
            ..null_segment()
        };
        s.gs = kvm_segment {
            base: self.vget("GS_BASE")?,
            ..null_segment()
        };
        regs.rip = frame.rip;
        regs.rsp = frame.rsp;
        regs.rflags = (frame.rflags & RFLAGS_GUEST) | RFLAGS_IF | 2;
        self.vset("VIF", frame.rflags & RFLAGS_IF)?;
        self.vset("MODE", 1)?;
        self.set_sregs(ctx, &s)?;
        self.set_regs(ctx, &regs)?;
        self.mode = Mode::User;
        self.counters.user_entries += 1;
        Ok(Disposition::Handled)
    }

    /// An event while a user task ran (an exit stub, vector `vector`).
    pub(super) fn user_event(
        &mut self,
        ctx: &mut VmContext<'_>,
        regs: &kvm_regs,
        vector: u64,
        error: u64,
        cr2: u64,
        frame: Frame,
    ) -> Result<Disposition, Stop> {
        match vector {
            14 => {
                let access = Access {
                    write: error & paging::PF_W != 0,
                    fetch: error & paging::PF_I != 0,
                    user: true,
                };
                let p = self.paging()?;
                let t = if cr2 >= HOLE_VA {
                    Err(WalkError::NotPresent)
                } else {
                    paging::walk(ctx.memory, p.cr3, cr2, p.nxe)
                };
                match t {
                    Ok(t) if paging::permits(&t, access, p.wp) => {
                        self.hidden_fault(ctx, View::User, cr2, frame.rip, &t, access.write)?;
                        Ok(Disposition::Handled)
                    }
                    Ok(_) | Err(WalkError::NotPresent) => {
                        let present = t.is_ok();
                        self.counters.guest_faults += 1;
                        let e = paging::error_code(access, present, p.nxe);
                        self.deliver_to_kernel(ctx, *regs, 14, Some(e), frame, true, cr2)
                    }
                    Err(WalkError::Bad(why)) => {
                        Err(abi(format!("user task at {:#x}: {why}", frame.rip)))
                    }
                }
            }
            0..=31 => {
                let e = has_error_code(vector).then_some(error);
                self.deliver_to_kernel(ctx, *regs, vector, e, frame, true, 0)
            }
            _ => {
                if self.vget("VIF")? & RFLAGS_IF != 0 {
                    self.deliver_to_kernel(ctx, *regs, vector, None, frame, true, 0)
                } else {
                    self.pend(vector)?;
                    Ok(Disposition::Handled)
                }
            }
        }
    }

    /// A user task's `syscall` reached the system-call page.
    pub(super) fn syscall(&mut self, ctx: &mut VmContext<'_>) -> Result<Disposition, Stop> {
        let mut regs = self.get_regs(ctx)?;
        if self.mode != Mode::User || regs.rip.wrapping_sub(2) != R_SYSCALL.va() {
            return Err(abi(format!(
                "system-call port written at {:#x} while the guest kernel ran",
                regs.rip
            )));
        }
        self.counters.syscalls += 1;
        let efer = self.vget("EFER")?;
        if efer & 1 == 0 {
            // EFER.SCE clear: the syscall instruction is undefined.
            let sregs = self.get_sregs(ctx)?;
            let frame = Frame {
                rip: regs.rcx.wrapping_sub(2),
                cs: u64::from(sregs.cs.selector),
                rflags: regs.r11,
                rsp: regs.rsp,
                ss: u64::from(sregs.ss.selector),
            };
            return self.deliver_to_kernel(ctx, regs, 6, None, frame, true, 0);
        }
        let star = self.vget("STAR")?;
        let lstar = self.vget("LSTAR")?;
        let mask = self.vget("SFMASK")?;
        if !canonical(lstar) {
            return Err(abi(format!("syscall to a non-canonical LSTAR {lstar:#x}")));
        }
        let user_flags = regs.r11;
        let vif = user_flags & RFLAGS_IF != 0 && mask & RFLAGS_IF == 0;
        let cs = (star >> 32) & 0xfffc;
        self.vset("VIF", if vif { RFLAGS_IF } else { 0 })?;
        self.vset("MODE", 0)?;
        self.slot()?.set(&R_VCPU, vf("SEL") + 8, cs)?;
        self.slot()?.set(&R_VCPU, vf("SEL") + 16, cs + 8)?;
        regs.rip = lstar;
        regs.rflags = (user_flags & !mask & RFLAGS_GUEST) | RFLAGS_IF | 2;
        self.enter_kernel(ctx, regs)
    }

    /// Switches the real CPU to the guest kernel's view with registers `regs`.
    fn enter_kernel(
        &mut self,
        ctx: &mut VmContext<'_>,
        regs: kvm_regs,
    ) -> Result<Disposition, Stop> {
        let root = self
            .shadow
            .as_ref()
            .ok_or_else(|| abi("no shadow"))?
            .kernel_root;
        let s = self.get_sregs(ctx)?;
        let s = self.kernel_sregs(s, root)?;
        self.set_sregs(ctx, &s)?;
        self.set_regs(ctx, &regs)?;
        self.mode = Mode::Kernel;
        Ok(Disposition::Handled)
    }

    /// Reflects an event that interrupted user context `from` to the guest kernel, as a CPU
    /// does on a privilege change: the stack from the guest's TSS (or IST), the frame
    /// [ss, rsp, rflags, cs, rip, error?] on it, the handler from the guest's IDT.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn deliver_to_kernel(
        &mut self,
        ctx: &mut VmContext<'_>,
        mut regs: kvm_regs,
        vector: u64,
        error: Option<u64>,
        from: Frame,
        user_if: bool,
        cr2: u64,
    ) -> Result<Disposition, Stop> {
        let mem = ctx.memory;
        let idt = self.vget("IDTR_BASE")?;
        let limit = self.vget("IDTR_LIMIT")?;
        let no_gate = || {
            Stop(EndReason::HypercallAbi {
                detail: format!(
                    "the guest kernel has no usable IDT gate for vector {vector} (from user mode \
                     at {:#x}): a real CPU would triple-fault here",
                    from.rip
                ),
            })
        };
        if vector * 16 + 15 > limit {
            return Err(no_gate());
        }
        let lo = self
            .read_virt_u64(mem, idt + vector * 16)
            .map_err(|_| no_gate())?;
        let hi = self
            .read_virt_u64(mem, idt + vector * 16 + 8)
            .map_err(|_| no_gate())?;
        let ty = (lo >> 40) & 0xf;
        if (lo >> 47) & 1 == 0 || (ty != 0xe && ty != 0xf) {
            return Err(no_gate());
        }
        let handler = (lo & 0xffff) | ((lo >> 32) & 0xffff_0000) | (hi << 32);
        let sel = (lo >> 16) & 0xffff;
        let ist = (lo >> 32) & 7;
        let tr = self.slot()?.get(&R_VCPU, vf("SEL") + 8 * 7)?;
        let tss_lo = self.guest_descriptor(mem, tr)?;
        let tss_hi = self
            .read_virt_u64(mem, self.vget("GDTR_BASE")? + (tr & 0xfff8) + 8)
            .map_err(|e| abi(format!("guest TSS descriptor: {e}")))?;
        let tss = ((tss_lo >> 16) & 0xff_ffff) | (((tss_lo >> 56) & 0xff) << 24) | (tss_hi << 32);
        let stack_at = if ist != 0 {
            tss + 36 + 8 * (ist - 1)
        } else {
            tss + 4
        };
        let stack = self
            .read_virt_u64(mem, stack_at)
            .map_err(|e| abi(format!("guest TSS at {tss:#x}: {e}")))?
            & !15;
        let flags = (from.rflags & !(RFLAGS_IF | RFLAGS_IOPL | RFLAGS_RF | RFLAGS_VM))
            | if user_if { RFLAGS_IF } else { 0 }
            | 2;
        let mut words = vec![from.rip, from.cs, flags, from.rsp, from.ss];
        if let Some(e) = error {
            words.insert(0, e);
        }
        let new_rsp = stack - 8 * words.len() as u64;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        self.write_virt(mem, new_rsp, &bytes).map_err(|e| {
            abi(format!(
                "delivering vector {vector} from user mode: the guest kernel stack {stack:#x} \
                 (from its TSS) is not usable: {e}; a real CPU would triple-fault"
            ))
        })?;
        if vector == 14 {
            self.vset("CR2", cr2)?;
        }
        self.vset("VIF", if ty == 0xf && user_if { RFLAGS_IF } else { 0 })?;
        self.vset("MODE", 0)?;
        self.slot()?.set(&R_VCPU, vf("SEL") + 8, sel)?;
        self.slot()?.set(&R_VCPU, vf("SEL") + 16, 0)?;
        regs.rip = handler;
        regs.rsp = new_rsp;
        regs.rflags = (from.rflags & RFLAGS_GUEST & !RFLAGS_TF) | RFLAGS_IF | 2;
        self.enter_kernel(ctx, regs)
    }
}
