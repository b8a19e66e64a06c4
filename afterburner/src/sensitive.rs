//! Classification: which decoded instructions are virtualization-sensitive, and how.
//!
//! This is the only place that maps iced-x86's view of an instruction onto the shared
//! [`SensitiveKind`] enum and the packed [`Operands`] of a site record. Scanner, burner and
//! verifier all call [`classify`]; the pair rule (`sti; hlt` is one site) is [`pairs_with`].
//! The table is tested from `tests/vectors/sensitive.txt`, assembled with GNU `as`.

use annotations::{Operands, SensitiveKind};
use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register};

/// A classified sensitive instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// What it is.
    pub kind: SensitiveKind,
    /// Operand details for the site record.
    pub operands: Operands,
}

/// General register number (rax=0 … r15=15) of any-width general register `r`.
fn gpr(r: Register) -> Option<u8> {
    let full = r.full_register();
    if full.is_gpr64() {
        u8::try_from(full as u32 - Register::RAX as u32).ok()
    } else {
        None
    }
}

/// Register number or NO_REG for operand `i`, which is either a register or memory.
fn rm_reg(insn: &Instruction, i: u32) -> (u8, u32) {
    match insn.op_kind(i) {
        OpKind::Register => (gpr(insn.op_register(i)).unwrap_or(Operands::NO_REG), 0),
        OpKind::Memory => (Operands::NO_REG, Operands::MEM),
        _ => (Operands::NO_REG, 0),
    }
}

fn seg_number(r: Register) -> u8 {
    match r {
        Register::ES => 0,
        Register::CS => 1,
        Register::SS => 2,
        Register::DS => 3,
        Register::FS => 4,
        Register::GS => 5,
        _ => 0xff,
    }
}

fn numbered(r: Register, first: Register) -> u8 {
    u8::try_from((r as u32).wrapping_sub(first as u32)).unwrap_or(0xff)
}

fn size_of_reg(r: Register) -> u8 {
    u8::try_from(r.size()).unwrap_or(0)
}

/// Classifies one decoded instruction; `None` when it is not sensitive.
///
/// `int3`, `int1` and `ud2` are deliberately not sites: they are traps by design (debug and BUG
/// paths) and reach the guest kernel through exception reflection in every backend. See
/// docs/sensitive-instructions.md.
pub fn classify(insn: &Instruction) -> Option<Class> {
    use SensitiveKind as K;
    let none = Operands::NONE;
    let mk = |kind, operands| Some(Class { kind, operands });
    let opsize = |n: u8| Operands::new(Operands::NO_REG, 0, n, 0);
    match insn.mnemonic() {
        Mnemonic::Cli => mk(K::Cli, none),
        Mnemonic::Sti => mk(K::Sti, none),
        Mnemonic::Pushf => mk(K::Pushf, opsize(2)),
        Mnemonic::Pushfd => mk(K::Pushf, opsize(4)),
        Mnemonic::Pushfq => mk(K::Pushf, opsize(8)),
        Mnemonic::Popf => mk(K::Popf, opsize(2)),
        Mnemonic::Popfd => mk(K::Popf, opsize(4)),
        Mnemonic::Popfq => mk(K::Popf, opsize(8)),
        Mnemonic::Hlt => mk(K::Hlt, none),
        Mnemonic::Iret => mk(K::Iret, opsize(2)),
        Mnemonic::Iretd => mk(K::Iret, opsize(4)),
        Mnemonic::Iretq | Mnemonic::Erets | Mnemonic::Eretu => mk(K::Iret, opsize(8)),
        Mnemonic::Retf => {
            let size = match insn.code() {
                Code::Retfw | Code::Retfw_imm16 => 2,
                Code::Retfd | Code::Retfd_imm16 => 4,
                _ => 8,
            };
            mk(K::Lret, opsize(size))
        }
        Mnemonic::Jmp | Mnemonic::Call => {
            let size = match insn.code() {
                Code::Jmp_m1616 | Code::Call_m1616 => 2,
                Code::Jmp_m1632 | Code::Call_m1632 => 4,
                Code::Jmp_m1664 | Code::Call_m1664 => 8,
                Code::Jmp_ptr1616 | Code::Call_ptr1616 => 2,
                Code::Jmp_ptr1632 | Code::Call_ptr1632 => 4,
                _ => return None,
            };
            let kind = if insn.mnemonic() == Mnemonic::Jmp {
                K::FarJmp
            } else {
                K::FarCall
            };
            let mem = if insn.op0_kind() == OpKind::Memory {
                Operands::MEM
            } else {
                0
            };
            mk(kind, Operands::new(Operands::NO_REG, 0, size, mem))
        }
        Mnemonic::Int if insn.code() == Code::Int_imm8 => mk(
            K::IntN,
            Operands::new(Operands::NO_REG, insn.immediate8(), 0, Operands::IMM),
        ),
        Mnemonic::In => {
            let size = size_of_reg(insn.op0_register());
            if insn.op1_kind() == OpKind::Immediate8 {
                mk(
                    K::In,
                    Operands::new(0, insn.immediate8(), size, Operands::IMM),
                )
            } else {
                mk(K::In, Operands::new(0, 0, size, 0))
            }
        }
        Mnemonic::Out => {
            let size = size_of_reg(insn.op1_register());
            if insn.op0_kind() == OpKind::Immediate8 {
                mk(
                    K::Out,
                    Operands::new(0, insn.immediate8(), size, Operands::IMM),
                )
            } else {
                mk(K::Out, Operands::new(0, 0, size, 0))
            }
        }
        m @ (Mnemonic::Insb
        | Mnemonic::Insw
        | Mnemonic::Insd
        | Mnemonic::Outsb
        | Mnemonic::Outsw
        | Mnemonic::Outsd) => {
            let (kind, size) = match m {
                Mnemonic::Insb => (K::Ins, 1),
                Mnemonic::Insw => (K::Ins, 2),
                Mnemonic::Insd => (K::Ins, 4),
                Mnemonic::Outsb => (K::Outs, 1),
                Mnemonic::Outsw => (K::Outs, 2),
                _ => (K::Outs, 4),
            };
            let rep = if insn.has_rep_prefix() || insn.has_repne_prefix() {
                Operands::REP
            } else {
                0
            };
            mk(kind, Operands::new(Operands::NO_REG, 0, size, rep))
        }
        Mnemonic::Mov => match insn.code() {
            Code::Mov_cr_r32 | Code::Mov_cr_r64 => mk(
                K::MovToCr,
                Operands::new(
                    gpr(insn.op1_register())?,
                    numbered(insn.op0_register(), Register::CR0),
                    8,
                    0,
                ),
            ),
            Code::Mov_r32_cr | Code::Mov_r64_cr => mk(
                K::MovFromCr,
                Operands::new(
                    gpr(insn.op0_register())?,
                    numbered(insn.op1_register(), Register::CR0),
                    8,
                    0,
                ),
            ),
            Code::Mov_dr_r32 | Code::Mov_dr_r64 => mk(
                K::MovToDr,
                Operands::new(
                    gpr(insn.op1_register())?,
                    numbered(insn.op0_register(), Register::DR0),
                    8,
                    0,
                ),
            ),
            Code::Mov_r32_dr | Code::Mov_r64_dr => mk(
                K::MovFromDr,
                Operands::new(
                    gpr(insn.op0_register())?,
                    numbered(insn.op1_register(), Register::DR0),
                    8,
                    0,
                ),
            ),
            Code::Mov_Sreg_rm16 | Code::Mov_Sreg_r32m16 | Code::Mov_Sreg_r64m16 => {
                let (reg, mem) = rm_reg(insn, 1);
                mk(
                    K::MovToSeg,
                    Operands::new(reg, seg_number(insn.op0_register()), 2, mem),
                )
            }
            Code::Mov_rm16_Sreg | Code::Mov_r32m16_Sreg | Code::Mov_r64m16_Sreg => {
                let (reg, mem) = rm_reg(insn, 0);
                let size = if mem != 0 {
                    2
                } else {
                    size_of_reg(insn.op0_register())
                };
                mk(
                    K::MovFromSeg,
                    Operands::new(reg, seg_number(insn.op1_register()), size, mem),
                )
            }
            _ => None,
        },
        Mnemonic::Push | Mnemonic::Pop => {
            let (kind, size) = match insn.code() {
                Code::Pushw_FS | Code::Pushw_GS => (K::PushSeg, 2),
                Code::Pushd_FS | Code::Pushd_GS => (K::PushSeg, 4),
                Code::Pushq_FS | Code::Pushq_GS => (K::PushSeg, 8),
                Code::Popw_FS | Code::Popw_GS => (K::PopSeg, 2),
                Code::Popd_FS | Code::Popd_GS => (K::PopSeg, 4),
                Code::Popq_FS | Code::Popq_GS => (K::PopSeg, 8),
                _ => return None,
            };
            mk(
                kind,
                Operands::new(Operands::NO_REG, seg_number(insn.op0_register()), size, 0),
            )
        }
        Mnemonic::Lkgs => {
            let (reg, mem) = rm_reg(insn, 0);
            mk(
                K::MovToSeg,
                Operands::new(reg, seg_number(Register::GS), 2, mem),
            )
        }
        Mnemonic::Lgdt => mk(
            K::Lgdt,
            Operands::new(Operands::NO_REG, 0, 0, Operands::MEM),
        ),
        Mnemonic::Lidt => mk(
            K::Lidt,
            Operands::new(Operands::NO_REG, 0, 0, Operands::MEM),
        ),
        Mnemonic::Sgdt => mk(
            K::Sgdt,
            Operands::new(Operands::NO_REG, 0, 0, Operands::MEM),
        ),
        Mnemonic::Sidt => mk(
            K::Sidt,
            Operands::new(Operands::NO_REG, 0, 0, Operands::MEM),
        ),
        m @ (Mnemonic::Lldt
        | Mnemonic::Ltr
        | Mnemonic::Sldt
        | Mnemonic::Str
        | Mnemonic::Smsw
        | Mnemonic::Lmsw
        | Mnemonic::Verr
        | Mnemonic::Verw) => {
            let kind = match m {
                Mnemonic::Lldt => K::Lldt,
                Mnemonic::Ltr => K::Ltr,
                Mnemonic::Sldt => K::Sldt,
                Mnemonic::Str => K::Str,
                Mnemonic::Smsw => K::Smsw,
                Mnemonic::Lmsw => K::Lmsw,
                Mnemonic::Verr => K::Verr,
                _ => K::Verw,
            };
            let (reg, mem) = rm_reg(insn, 0);
            let size = if mem != 0 {
                2
            } else {
                size_of_reg(insn.op0_register())
            };
            mk(kind, Operands::new(reg, 0, size, mem))
        }
        m @ (Mnemonic::Lar | Mnemonic::Lsl) => {
            let kind = if m == Mnemonic::Lar { K::Lar } else { K::Lsl };
            let dst = gpr(insn.op0_register()).unwrap_or(Operands::NO_REG);
            let (src, mem) = rm_reg(insn, 1);
            // reg: destination; sys: source register number (0xff when memory)
            mk(
                kind,
                Operands::new(dst, src, size_of_reg(insn.op0_register()), mem),
            )
        }
        Mnemonic::Clts => mk(K::Clts, none),
        Mnemonic::Invlpg => mk(
            K::Invlpg,
            Operands::new(Operands::NO_REG, 0, 0, Operands::MEM),
        ),
        Mnemonic::Invpcid => mk(
            K::Invpcid,
            Operands::new(
                gpr(insn.op0_register()).unwrap_or(Operands::NO_REG),
                0,
                16,
                Operands::MEM,
            ),
        ),
        Mnemonic::Invd => mk(K::Invd, none),
        Mnemonic::Wbinvd | Mnemonic::Wbnoinvd => mk(K::Wbinvd, none),
        Mnemonic::Rdmsr | Mnemonic::Rdmsrlist => mk(K::Rdmsr, none),
        Mnemonic::Wrmsr | Mnemonic::Wrmsrns | Mnemonic::Wrmsrlist => mk(K::Wrmsr, none),
        Mnemonic::Rdtsc => mk(K::Rdtsc, none),
        Mnemonic::Rdtscp => mk(K::Rdtscp, none),
        Mnemonic::Rdpmc => mk(K::Rdpmc, none),
        Mnemonic::Cpuid => mk(K::Cpuid, none),
        Mnemonic::Swapgs => mk(K::Swapgs, none),
        Mnemonic::Sysret => mk(K::Sysret, opsize(4)),
        Mnemonic::Sysretq => mk(K::Sysret, opsize(8)),
        Mnemonic::Sysexit => mk(K::Sysexit, opsize(4)),
        Mnemonic::Sysexitq => mk(K::Sysexit, opsize(8)),
        m @ (Mnemonic::Rdfsbase | Mnemonic::Rdgsbase | Mnemonic::Wrfsbase | Mnemonic::Wrgsbase) => {
            let kind = match m {
                Mnemonic::Rdfsbase => K::RdFsBase,
                Mnemonic::Rdgsbase => K::RdGsBase,
                Mnemonic::Wrfsbase => K::WrFsBase,
                _ => K::WrGsBase,
            };
            let r = insn.op0_register();
            mk(kind, Operands::new(gpr(r)?, 0, size_of_reg(r), 0))
        }
        Mnemonic::Xsetbv => mk(K::Xsetbv, none),
        Mnemonic::Monitor => mk(K::Monitor, none),
        Mnemonic::Mwait => mk(K::Mwait, none),
        Mnemonic::Stac => mk(K::Stac, none),
        Mnemonic::Clac => mk(K::Clac, none),
        Mnemonic::Vmcall => mk(K::Vmcall, none),
        Mnemonic::Vmmcall => mk(K::Vmmcall, none),
        Mnemonic::Xsaves => mk(
            K::Xsaves,
            Operands::new(Operands::NO_REG, 0, 4, Operands::MEM),
        ),
        Mnemonic::Xsaves64 => mk(
            K::Xsaves,
            Operands::new(Operands::NO_REG, 0, 8, Operands::MEM),
        ),
        Mnemonic::Xrstors => mk(
            K::Xrstors,
            Operands::new(Operands::NO_REG, 0, 4, Operands::MEM),
        ),
        Mnemonic::Xrstors64 => mk(
            K::Xrstors,
            Operands::new(Operands::NO_REG, 0, 8, Operands::MEM),
        ),
        _ => None,
    }
}

/// Whether `first` (already classified as `Sti`) and the instruction right after it form one
/// `sti; hlt` site: `sti`'s interrupt shadow makes the pair atomic, and splitting it would
/// open a window where an interrupt is taken before the halt and the halt then sleeps
/// through the wake-up.
pub fn pairs_with(first: &Class, next: &Instruction) -> bool {
    first.kind == SensitiveKind::Sti && next.mnemonic() == Mnemonic::Hlt
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions};

    fn class_of(bytes: &[u8]) -> Option<Class> {
        let mut d = Decoder::new(64, bytes, DecoderOptions::NONE);
        classify(&d.decode())
    }

    #[test]
    fn register_operands_are_recorded() {
        // mov %r11, %cr3
        let c = class_of(&[0x49, 0x0f, 0x22, 0xdb]).unwrap();
        assert_eq!(c.kind, SensitiveKind::MovToCr);
        assert_eq!((c.operands.reg(), c.operands.sys()), (11, 3));
        // mov %cr8, %rax
        let c = class_of(&[0x44, 0x0f, 0x20, 0xc0]).unwrap();
        assert_eq!(c.kind, SensitiveKind::MovFromCr);
        assert_eq!((c.operands.reg(), c.operands.sys()), (0, 8));
        // out %al, $0x80
        let c = class_of(&[0xe6, 0x80]).unwrap();
        assert_eq!(
            (
                c.kind,
                c.operands.sys(),
                c.operands.size(),
                c.operands.is_imm()
            ),
            (SensitiveKind::Out, 0x80, 1, true)
        );
        // in (%dx), %eax
        let c = class_of(&[0xed]).unwrap();
        assert_eq!(
            (c.kind, c.operands.size(), c.operands.is_imm()),
            (SensitiveKind::In, 4, false)
        );
        // mov %eax, %ds  (8e d8)
        let c = class_of(&[0x8e, 0xd8]).unwrap();
        assert_eq!(
            (c.kind, c.operands.reg(), c.operands.sys()),
            (SensitiveKind::MovToSeg, 0, 3)
        );
        // plain instructions are not sensitive
        assert_eq!(class_of(&[0x48, 0x89, 0xc3]), None); // mov %rax,%rbx
        assert_eq!(class_of(&[0xcc]), None); // int3
        assert_eq!(class_of(&[0x0f, 0x0b]), None); // ud2
    }
}
