//! The kvm backend's site rewriting: every sensitive site becomes inline code over the virtual
//! CPU or a call into the guest-side runtime ([`crate::runtime`]), so the guest kernel can run
//! deprivileged at CPL3 (docs/backends.md has the table of replacements).
//!
//! A site is rewritten twice. Before the guest runs, every rewritten site gets its *boot form*,
//! `out %al, $START_PORT`: the guest boots at CPL0 on its own page tables, and the first site it
//! reaches hands it to the host, which switches it to CPL3 and writes every site's *final form*
//! (see [`plan`]). Sites the final form keeps (rdtsc, rdtscp: native at CPL3) keep their boot
//! form too.
//!
//! Some forms need a few instructions of glue: the port of an `in`, the value of a
//! `mov %reg, %cr3`, the effective address of `lgdt m`. Those sites call a *thunk* in region
//! `R_THUNKS` that pushes the argument and jumps to the routine; the routine returns straight
//! to the site.

use std::collections::HashMap;

use annotations::SensitiveKind as K;
use iced_x86::{
    BlockEncoder, BlockEncoderOptions, Code, Instruction, InstructionBlock, MemoryOperand, Register,
};

use crate::image::{Image, ImageError};
use crate::layout::{self, R_THUNKS, START_PORT};
use crate::original;
use crate::patch::{patch, Backend, PatchError, PatchReport, Rewrite};
use crate::runtime::sym;
use crate::sites::Site;

/// The kvm backend (final forms). Collects the thunks it generates.
#[derive(Debug)]
pub struct Kvm {
    thunks: Vec<u8>,
    dedup: HashMap<String, u64>,
}

impl Default for Kvm {
    fn default() -> Self {
        Kvm::new()
    }
}

/// What the kvm backend writes into a guest.
#[derive(Clone, Debug)]
pub struct KvmPlan {
    /// Site address and bytes of each site's boot form (written before the guest runs).
    pub boot: Vec<(u64, Vec<u8>)>,
    /// Site address and bytes of each site's final form (written at the switch to CPL3).
    pub final_form: Vec<(u64, Vec<u8>)>,
    /// Contents of region `R_THUNKS` from its start.
    pub thunks: Vec<u8>,
    /// Per-kind counts of the final form.
    pub report: PatchReport,
}

/// An [`Image`] that reads from another and records writes instead of doing them.
struct Recorder<'a> {
    inner: &'a dyn Image,
    writes: Vec<(u64, Vec<u8>)>,
}

impl Image for Recorder<'_> {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ImageError> {
        self.inner.read(addr, len)
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), ImageError> {
        self.writes.push((addr, bytes.to_vec()));
        Ok(())
    }
}

/// The boot form: every site the final form rewrites becomes `out %al, $START_PORT`.
struct Boot<'a> {
    rewritten: &'a [(u64, Vec<u8>)],
}

impl Backend for Boot<'_> {
    fn name(&self) -> &'static str {
        "kvm"
    }
    fn rewrite(&mut self, site: &Site, _bytes: &[u8]) -> Result<Rewrite, PatchError> {
        if self.rewritten.iter().any(|(a, _)| *a == site.addr) {
            Ok(Rewrite::Replace(vec![0xe6, START_PORT.to_le_bytes()[0]]))
        } else {
            Ok(Rewrite::Keep)
        }
    }
}

/// Computes both forms of every site of `image` (which must hold the original sites), and the
/// thunks. Nothing is written to `image`.
pub fn plan(image: &dyn Image, sites: &[Site]) -> Result<KvmPlan, PatchError> {
    let mut kvm = Kvm::new();
    let mut rec = Recorder {
        inner: image,
        writes: Vec::new(),
    };
    let report = patch(&mut rec, sites, &mut kvm)?;
    let final_form = rec.writes;
    let mut rec = Recorder {
        inner: image,
        writes: Vec::new(),
    };
    patch(
        &mut rec,
        sites,
        &mut Boot {
            rewritten: &final_form,
        },
    )?;
    Ok(KvmPlan {
        boot: rec.writes,
        final_form,
        thunks: kvm.thunks,
        report,
    })
}

fn vcpu_abs(field: &str) -> u64 {
    layout::R_VCPU.va() + layout::vcpu(field)
}

/// Register number 0..15 of a 64-bit (or 32/16/8-bit) general register.
fn gpr(r: Register) -> Option<u8> {
    let full = r.full_register();
    let n = match full {
        Register::RAX => 0,
        Register::RCX => 1,
        Register::RDX => 2,
        Register::RBX => 3,
        Register::RSP => 4,
        Register::RBP => 5,
        Register::RSI => 6,
        Register::RDI => 7,
        Register::R8 => 8,
        Register::R9 => 9,
        Register::R10 => 10,
        Register::R11 => 11,
        Register::R12 => 12,
        Register::R13 => 13,
        Register::R14 => 14,
        Register::R15 => 15,
        _ => return None,
    };
    Some(n)
}

/// `disp32` as the sign-extended absolute address it must be (the wedge hole is in the top
/// 2 GiB, so every runtime address qualifies).
fn abs32(addr: u64) -> [u8; 4] {
    let v = addr as i64;
    debug_assert!(
        i32::try_from(v).is_ok(),
        "{addr:#x} is not a sign-extended 32-bit address"
    );
    (v as i32).to_le_bytes()
}

/// `op r64, [abs32]` or `op [abs32], r64` with REX.W: `REX opcode ModRM(00 reg 100) SIB(25)
/// disp32` (8 bytes).
fn rex_w_abs(opcode: &[u8], reg: u8, addr: u64) -> Vec<u8> {
    let mut v = vec![0x48 | ((reg >> 3) & 1) << 2];
    v.extend_from_slice(opcode);
    v.push(((reg & 7) << 3) | 0b100);
    v.push(0x25);
    v.extend_from_slice(&abs32(addr));
    v
}

impl Kvm {
    /// A kvm backend with an empty thunk area.
    pub fn new() -> Kvm {
        Kvm {
            thunks: Vec::new(),
            dedup: HashMap::new(),
        }
    }

    /// The thunk area's contents (region `R_THUNKS` from its start).
    pub fn thunks(&self) -> &[u8] {
        &self.thunks
    }

    fn call(site: &Site, target: u64) -> Result<Rewrite, PatchError> {
        let next = site.addr.wrapping_add(5);
        let rel =
            i32::try_from(target.wrapping_sub(next) as i64).map_err(|_| PatchError::Resources {
                site: Box::new(*site),
                why: format!("the routine at {target:#x} is out of reach of a call rel32"),
            })?;
        let mut v = vec![0xe8];
        v.extend_from_slice(&rel.to_le_bytes());
        Ok(Rewrite::Replace(v))
    }

    /// Adds (or reuses) a thunk whose code `make(ip)` returns, and calls it from `site`.
    fn call_thunk(
        &mut self,
        site: &Site,
        key: Option<String>,
        make: impl FnOnce(u64) -> Result<Vec<u8>, String>,
    ) -> Result<Rewrite, PatchError> {
        if let Some(k) = &key {
            if let Some(&addr) = self.dedup.get(k) {
                return Kvm::call(site, addr);
            }
        }
        while !self.thunks.len().is_multiple_of(16) {
            self.thunks.push(0xcc);
        }
        let ip = R_THUNKS.va() + self.thunks.len() as u64;
        let code = make(ip).map_err(|why| PatchError::Resources {
            site: Box::new(*site),
            why: format!("cannot encode its thunk: {why}"),
        })?;
        if (self.thunks.len() + code.len()) as u64 > R_THUNKS.size {
            return Err(PatchError::Resources {
                site: Box::new(*site),
                why: format!("the thunk area ({:#x} bytes) is full", R_THUNKS.size),
            });
        }
        self.thunks.extend_from_slice(&code);
        if let Some(k) = key {
            self.dedup.insert(k, ip);
        }
        Kvm::call(site, ip)
    }

    /// Thunk: `push %reg; jmp routine`.
    fn push_reg_thunk(
        &mut self,
        site: &Site,
        reg: u8,
        routine: &str,
    ) -> Result<Rewrite, PatchError> {
        let target = sym(routine);
        self.call_thunk(site, Some(format!("reg {reg} {routine}")), |ip| {
            let mut v = Vec::new();
            if reg >= 8 {
                v.push(0x41);
            }
            v.push(0x50 + (reg & 7));
            jmp_rel32(&mut v, ip, target)?;
            Ok(v)
        })
    }

    /// Thunk: `push $imm; jmp routine`.
    fn push_imm_thunk(
        &mut self,
        site: &Site,
        imm: u32,
        routine: &str,
    ) -> Result<Rewrite, PatchError> {
        let target = sym(routine);
        self.call_thunk(site, Some(format!("imm {imm} {routine}")), |ip| {
            let mut v = vec![0x68];
            v.extend_from_slice(&imm.to_le_bytes());
            jmp_rel32(&mut v, ip, target)?;
            Ok(v)
        })
    }

    /// Thunk: push the effective address of `insn`'s memory operand; jmp routine.
    fn push_ea_thunk(
        &mut self,
        site: &Site,
        insn: &Instruction,
        routine: &str,
    ) -> Result<Rewrite, PatchError> {
        let unsupported = |why: &str| PatchError::Unsupported {
            backend: "kvm",
            site: Box::new(*site),
            insn: original::format_gas(insn),
            why: why.to_string(),
        };
        if !(0..insn.op_count()).any(|n| insn.op_kind(n) == iced_x86::OpKind::Memory) {
            return Err(unsupported("it has no memory operand"));
        }
        if matches!(insn.segment_prefix(), Register::FS | Register::GS) {
            return Err(unsupported("an %fs/%gs memory operand"));
        }
        let base = insn.memory_base();
        let mut displ = insn.memory_displacement64() as i64;
        if base == Register::RSP {
            // The thunk runs with the site's return address and the saved %rax pushed.
            displ += 16;
        }
        let mem = MemoryOperand::new(
            base,
            insn.memory_index(),
            insn.memory_index_scale(),
            displ,
            // 64-bit addressing: 1 (disp8) or 8 (disp32) in iced's terms.
            if base != Register::RIP && i8::try_from(displ).is_ok() {
                1
            } else {
                8
            },
            false,
            Register::None,
        );
        let target = sym(routine);
        self.call_thunk(site, None, |ip| {
            let e = |e: iced_x86::IcedError| e.to_string();
            let insns = [
                Instruction::with1(Code::Push_r64, Register::RAX).map_err(e)?,
                Instruction::with2(Code::Lea_r64_m, Register::RAX, mem).map_err(e)?,
                Instruction::with2(
                    Code::Xchg_rm64_r64,
                    MemoryOperand::with_base(Register::RSP),
                    Register::RAX,
                )
                .map_err(e)?,
                Instruction::with_branch(Code::Jmp_rel32_64, target).map_err(e)?,
            ];
            let block = InstructionBlock::new(&insns, ip);
            let r = BlockEncoder::encode(64, block, BlockEncoderOptions::NONE).map_err(e)?;
            Ok(r.code_buffer)
        })
    }
}

fn jmp_rel32(v: &mut Vec<u8>, ip: u64, target: u64) -> Result<(), String> {
    let next = ip + v.len() as u64 + 5;
    let rel = i32::try_from(target.wrapping_sub(next) as i64)
        .map_err(|_| format!("{target:#x} is out of reach of a jmp rel32"))?;
    v.push(0xe9);
    v.extend_from_slice(&rel.to_le_bytes());
    Ok(())
}

/// Port-I/O routine for an operand size.
fn io_routine(out: bool, size: u32) -> &'static str {
    match (out, size) {
        (false, 1) => "wedge_in_b",
        (false, 2) => "wedge_in_w",
        (false, _) => "wedge_in_l",
        (true, 1) => "wedge_out_b",
        (true, 2) => "wedge_out_w",
        (true, _) => "wedge_out_l",
    }
}

impl Backend for Kvm {
    fn name(&self) -> &'static str {
        "kvm"
    }

    fn rewrite(&mut self, site: &Site, bytes: &[u8]) -> Result<Rewrite, PatchError> {
        let insns = original::decode(site, bytes).map_err(|why| PatchError::NotOriginal {
            site: Box::new(*site),
            why,
        })?;
        let i = &insns[0];
        let unsupported = |why: &str| {
            Err(PatchError::Unsupported {
                backend: "kvm",
                site: Box::new(*site),
                insn: original::format_gas(i),
                why: why.to_string(),
            })
        };
        match site.kind {
            K::Cli => {
                // movb $0, VIF+1
                let mut v = vec![0xc6, 0x04, 0x25];
                v.extend_from_slice(&abs32(vcpu_abs("VIF") + 1));
                v.push(0);
                Ok(Rewrite::Replace(v))
            }
            K::Sti if site.site_len >= 15 => {
                // movb $2, VIF+1; call *STI_HOOK: the hook is a bare `ret` unless an
                // interrupt is pending (wedge.c keeps it up to date).
                let mut v = vec![0xc6, 0x04, 0x25];
                v.extend_from_slice(&abs32(vcpu_abs("VIF") + 1));
                v.push(2);
                v.extend_from_slice(&[0xff, 0x14, 0x25]);
                v.extend_from_slice(&abs32(vcpu_abs("STI_HOOK")));
                Ok(Rewrite::Replace(v))
            }
            K::Sti => Kvm::call(site, sym("wedge_sti")),
            K::StiHlt => Kvm::call(site, sym("wedge_sti_hlt")),
            K::Hlt => Kvm::call(site, sym("wedge_hlt")),
            K::Pushf if i.code() == Code::Pushfq => {
                // pushfq; call wedge_pushf2 (which puts the virtual IF into the pushed word).
                let after = Site {
                    addr: site.addr + 1,
                    ..*site
                };
                let Rewrite::Replace(call) = Kvm::call(&after, sym("wedge_pushf2"))? else {
                    unreachable!("a call is a replacement")
                };
                let mut v = vec![0x9c];
                v.extend_from_slice(&call);
                Ok(Rewrite::Replace(v))
            }
            // wedge_popf_fast falls back to wedge_popf when an interrupt becomes deliverable
            // or flags beyond IF, DF and the arithmetic ones change.
            K::Popf if i.code() == Code::Popfq => Kvm::call(site, sym("wedge_popf_fast")),
            K::Pushf | K::Popf => unsupported("only the 64-bit form is emulated"),
            K::Iret if i.code() == Code::Iretq => Kvm::call(site, sym("wedge_iret")),
            K::Iret => unsupported("only iretq is emulated"),
            K::Lret if i.code() == Code::Retfq => Kvm::call(site, sym("wedge_lret")),
            K::Lret => unsupported("only lretq without an immediate is emulated"),
            K::In | K::Out => {
                let out = site.kind == K::Out;
                let (size, port) = match i.code() {
                    Code::In_AL_imm8 => (1, Some(i.immediate8())),
                    Code::In_AX_imm8 => (2, Some(i.immediate8())),
                    Code::In_EAX_imm8 => (4, Some(i.immediate8())),
                    Code::In_AL_DX => (1, None),
                    Code::In_AX_DX => (2, None),
                    Code::In_EAX_DX => (4, None),
                    Code::Out_imm8_AL => (1, Some(i.immediate8())),
                    Code::Out_imm8_AX => (2, Some(i.immediate8())),
                    Code::Out_imm8_EAX => (4, Some(i.immediate8())),
                    Code::Out_DX_AL => (1, None),
                    Code::Out_DX_AX => (2, None),
                    Code::Out_DX_EAX => (4, None),
                    _ => return unsupported("unknown form"),
                };
                let routine = io_routine(out, size);
                match port {
                    Some(p) => self.push_imm_thunk(site, u32::from(p), routine),
                    None => self.push_reg_thunk(site, 2, routine),
                }
            }
            K::MovToCr | K::MovFromCr => {
                let (cr, reg) = if site.kind == K::MovToCr {
                    (i.op0_register(), i.op1_register())
                } else {
                    (i.op1_register(), i.op0_register())
                };
                let Some(r) = gpr(reg) else {
                    return unsupported("not a general register");
                };
                let field = match cr {
                    Register::CR0 => "CR0",
                    Register::CR2 => "CR2",
                    Register::CR3 => "CR3",
                    Register::CR4 => "CR4",
                    Register::CR8 => "CR8",
                    _ => return unsupported("no such control register in the virtual CPU"),
                };
                if site.kind == K::MovFromCr {
                    // mov VCPU.CRn, %reg
                    return Ok(Rewrite::Replace(rex_w_abs(&[0x8b], r, vcpu_abs(field))));
                }
                match cr {
                    // mov %reg, VCPU.CRn: no side effect to emulate.
                    Register::CR2 | Register::CR8 => {
                        Ok(Rewrite::Replace(rex_w_abs(&[0x89], r, vcpu_abs(field))))
                    }
                    Register::CR0 => self.push_reg_thunk(site, r, "wedge_write_cr0"),
                    Register::CR3 => self.push_reg_thunk(site, r, "wedge_write_cr3"),
                    _ => self.push_reg_thunk(site, r, "wedge_write_cr4"),
                }
            }
            K::MovToDr | K::MovFromDr => {
                let (dr, reg) = if site.kind == K::MovToDr {
                    (i.op0_register(), i.op1_register())
                } else {
                    (i.op1_register(), i.op0_register())
                };
                let (Some(r), Some(n)) =
                    (gpr(reg), dr.number().checked_sub(Register::DR0.number()))
                else {
                    return unsupported("not a general register");
                };
                let addr = vcpu_abs("DR") + 8 * (n as u64 & 7);
                let op = if site.kind == K::MovToDr { 0x89 } else { 0x8b };
                Ok(Rewrite::Replace(rex_w_abs(&[op], r, addr)))
            }
            K::MovToSeg | K::MovFromSeg => {
                let to = site.kind == K::MovToSeg;
                let (seg, other) = if to {
                    (i.op0_register(), 1)
                } else {
                    (i.op1_register(), 0)
                };
                if i.op_kind(other) != iced_x86::OpKind::Register {
                    return unsupported("only register operands are emulated");
                }
                let reg = i.op_register(other);
                let Some(r) = gpr(reg) else {
                    return unsupported("not a general register");
                };
                let n = match seg {
                    Register::ES => 0,
                    Register::CS => 1,
                    Register::SS => 2,
                    Register::DS => 3,
                    Register::FS => 4,
                    Register::GS => 5,
                    _ => return unsupported("unknown segment register"),
                };
                let addr = vcpu_abs("SEL") + 8 * n;
                let mut v = Vec::new();
                if to {
                    // movl %r32, VCPU.SEL[n]: the selector is the low 16 bits.
                    if r >= 8 {
                        v.push(0x44);
                    }
                    v.push(0x89);
                } else if reg.size() == 2 {
                    // movw VCPU.SEL[n], %r16
                    v.push(0x66);
                    if r >= 8 {
                        v.push(0x44);
                    }
                    v.push(0x8b);
                } else {
                    // movzwl VCPU.SEL[n], %r32 (zero-extends, as mov %sreg, %r32/%r64 does)
                    if r >= 8 {
                        v.push(0x44);
                    }
                    v.extend_from_slice(&[0x0f, 0xb7]);
                }
                v.push(((r & 7) << 3) | 0b100);
                v.push(0x25);
                v.extend_from_slice(&abs32(addr));
                Ok(Rewrite::Replace(v))
            }
            K::Lgdt => self.push_ea_thunk(site, i, "wedge_lgdt"),
            K::Lidt => self.push_ea_thunk(site, i, "wedge_lidt"),
            K::Sgdt => self.push_ea_thunk(site, i, "wedge_sgdt"),
            K::Sidt => self.push_ea_thunk(site, i, "wedge_sidt"),
            K::Invlpg => self.push_ea_thunk(site, i, "wedge_invlpg"),
            K::Ltr => match gpr(i.op0_register()) {
                Some(r) if i.op_kind(0) == iced_x86::OpKind::Register => {
                    self.push_reg_thunk(site, r, "wedge_ltr")
                }
                _ => unsupported("only a register operand is emulated"),
            },
            K::Rdmsr => Kvm::call(site, sym("wedge_rdmsr")),
            K::Wrmsr if i.code() == Code::Wrmsr => Kvm::call(site, sym("wedge_wrmsr")),
            K::Cpuid => Kvm::call(site, sym("wedge_cpuid")),
            K::Clts => Kvm::call(site, sym("wedge_clts")),
            K::Wbinvd | K::Invd => Kvm::call(site, sym("wedge_wbinvd")),
            // Native at CPL3 (CR4.TSD is clear in the real CR4).
            K::Rdtsc | K::Rdtscp => Ok(Rewrite::Keep),
            _ => unsupported("the kvm backend does not emulate this kind yet"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annotations::{nop, Operands, SensitiveKind};
    use iced_x86::{Decoder, DecoderOptions};

    const SITE: u64 = 0xffff_ffff_8010_0100;

    struct Mem(Vec<u8>);
    impl Image for Mem {
        fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ImageError> {
            let o = (addr - SITE) as usize;
            Ok(self.0[o..o + len].to_vec())
        }
        fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), ImageError> {
            let o = (addr - SITE) as usize;
            self.0[o..o + bytes.len()].copy_from_slice(bytes);
            Ok(())
        }
    }

    fn one(kind: SensitiveKind, code: &[u8]) -> (Site, Result<KvmPlan, PatchError>) {
        let insn_len = u8::try_from(code.len()).unwrap();
        let site = Site {
            addr: SITE,
            record: 0x10,
            insn_len,
            site_len: annotations::site_len(kind, insn_len),
            kind,
            operands: Operands::NONE,
            flags: 0,
        };
        let mut bytes = code.to_vec();
        bytes.resize(usize::from(site.site_len), 0);
        nop::fill(&mut bytes[code.len()..]);
        let img = Mem(bytes);
        (site, plan(&img, &[site]))
    }

    fn decode_all(code: &[u8], ip: u64) -> Vec<String> {
        let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
        let mut v = Vec::new();
        while d.can_decode() {
            v.push(original::format_gas(&d.decode()));
        }
        v
    }

    #[test]
    fn cli_is_one_store_to_the_virtual_if() {
        let (_, p) = one(SensitiveKind::Cli, &[0xfa]);
        let p = p.unwrap();
        let (_, bytes) = &p.final_form[0];
        assert_eq!(bytes.len(), 8);
        let text = decode_all(bytes, SITE);
        assert_eq!(
            text[0],
            format!("movb $0,{:#X}", vcpu_abs("VIF") + 1).replace("0X", "0x")
        );
        assert_eq!(p.boot[0].1[..2], [0xe6, START_PORT as u8]);
    }

    #[test]
    fn calls_reach_their_routines_and_thunks_push_the_argument() {
        // sti: set the virtual IF, then call through the hook.
        let (_, p) = one(SensitiveKind::Sti, &[0xfb]);
        let text = decode_all(&p.unwrap().final_form[0].1, SITE);
        let hex = |v: u64| format!("{v:#X}").replace("0X", "0x");
        assert_eq!(text[0], format!("movb $2,{}", hex(vcpu_abs("VIF") + 1)));
        assert_eq!(text[1], format!("callq *{}", hex(vcpu_abs("STI_HOOK"))));
        // hlt: a call to its routine.
        let (_, p) = one(SensitiveKind::Hlt, &[0xf4]);
        let text = decode_all(&p.unwrap().final_form[0].1, SITE);
        assert!(text[0].starts_with("call"), "{text:?}");
        assert!(
            text[0].contains(&format!("{:X}", sym("wedge_hlt"))),
            "{text:?}"
        );
        // out %al, $0x80 -> call thunk; thunk: push $0x80; jmp wedge_out_b
        let (_, p) = one(SensitiveKind::Out, &[0xe6, 0x80]);
        let p = p.unwrap();
        let thunk = decode_all(&p.thunks, R_THUNKS.va());
        assert_eq!(thunk[0], "push $0x80");
        assert!(
            thunk[1].contains(&format!("{:X}", sym("wedge_out_b"))),
            "{thunk:?}"
        );
        // invlpg 8(%rsp): the thunk adds the 16 bytes it pushed.
        let (_, p) = one(SensitiveKind::Invlpg, &[0x0f, 0x01, 0x7c, 0x24, 0x08]);
        let thunk = decode_all(&p.unwrap().thunks, R_THUNKS.va());
        assert_eq!(thunk[1], "lea 0x18(%rsp),%rax");
        // mov %cr3, %r12 -> mov VCPU.CR3, %r12
        let (_, p) = one(SensitiveKind::MovFromCr, &[0x41, 0x0f, 0x20, 0xdc]);
        let text = decode_all(&p.unwrap().final_form[0].1, SITE);
        assert!(
            text[0].starts_with("mov 0x") && text[0].ends_with(",%r12"),
            "{text:?}"
        );
    }

    #[test]
    fn forms_it_cannot_emulate_are_errors_naming_the_site() {
        let (_, p) = one(SensitiveKind::Swapgs, &[0x0f, 0x01, 0xf8]);
        let e = p.unwrap_err().to_string();
        assert!(
            e.contains(&format!("{SITE:#x}")) && e.contains("swapgs"),
            "{e}"
        );
    }
}
