//! Checking that a site holds what the afterburner left there: the original instruction(s) of
//! its kind, then exactly the padding NOPs of docs/annotation-format.md.

use annotations::{nop, SensitiveKind, FLAG_UNPADDED};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use crate::sites::Site;

/// Decodes the original instruction(s) of `site` from its bytes (`bytes.len() == site_len`)
/// and checks them and the padding. Returns the instructions (two for a `sti; hlt` pair).
pub fn decode(site: &Site, bytes: &[u8]) -> Result<Vec<Instruction>, String> {
    let insn_len = usize::from(site.insn_len);
    if bytes.len() != usize::from(site.site_len) || insn_len > bytes.len() {
        return Err(format!(
            "holds {} bytes, the record says {}",
            bytes.len(),
            site.site_len
        ));
    }
    let (code, pad) = bytes.split_at(insn_len);
    if site.flags & FLAG_UNPADDED == 0 && !nop::is_padding(pad) {
        return Err(format!("padding is not the recommended NOPs: {}", hex(pad)));
    }
    let mut decoder = Decoder::with_ip(64, code, site.addr, DecoderOptions::NONE);
    let mut insns = Vec::new();
    while decoder.can_decode() {
        let i = decoder.decode();
        if i.is_invalid() {
            return Err(format!("bytes {} do not decode", hex(code)));
        }
        insns.push(i);
    }
    let expected = if site.kind == SensitiveKind::StiHlt {
        2
    } else {
        1
    };
    if insns.len() != expected {
        return Err(format!(
            "the first {insn_len} bytes ({}) are {} instructions, a {} site has {expected}",
            hex(code),
            insns.len(),
            site.kind
        ));
    }
    let ok = if site.kind == SensitiveKind::StiHlt {
        insns[0].mnemonic() == Mnemonic::Sti && insns[1].mnemonic() == Mnemonic::Hlt
    } else {
        matches_kind(site.kind, &insns[0])
    };
    if !ok {
        return Err(format!(
            "holds `{}` ({}), not a {} instruction",
            insns.iter().map(format_gas).collect::<Vec<_>>().join("; "),
            hex(code),
            site.kind
        ));
    }
    Ok(insns)
}

/// The instruction in GNU assembler syntax.
pub fn format_gas(i: &Instruction) -> String {
    use iced_x86::{Formatter, GasFormatter};
    let mut out = String::new();
    GasFormatter::new().format(i, &mut out);
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn reg_op(i: &Instruction, n: u32) -> Option<Register> {
    (n < i.op_count() && i.op_kind(n) == OpKind::Register).then(|| i.op_register(n))
}

/// Whether instruction `i` is one of `kind` (docs/sensitive-instructions.md).
pub fn matches_kind(kind: SensitiveKind, i: &Instruction) -> bool {
    use Mnemonic as M;
    use SensitiveKind as K;
    let m = i.mnemonic();
    let is_seg = |r: Option<Register>| r.is_some_and(|r| r.is_segment_register());
    let is_fs_gs = |r: Option<Register>| matches!(r, Some(Register::FS | Register::GS));
    match kind {
        K::Cli => m == M::Cli,
        K::Sti => m == M::Sti,
        K::StiHlt => false,
        K::Pushf => matches!(m, M::Pushf | M::Pushfd | M::Pushfq),
        K::Popf => matches!(m, M::Popf | M::Popfd | M::Popfq),
        K::Hlt => m == M::Hlt,
        K::Iret => matches!(m, M::Iret | M::Iretd | M::Iretq),
        K::Lret => m == M::Retf,
        K::FarJmp => m == M::Jmp && i.is_jmp_far_indirect(),
        K::FarCall => m == M::Call && i.is_call_far_indirect(),
        K::IntN => m == M::Int,
        K::In => m == M::In,
        K::Out => m == M::Out,
        K::Ins => matches!(m, M::Insb | M::Insw | M::Insd),
        K::Outs => matches!(m, M::Outsb | M::Outsw | M::Outsd),
        K::MovToCr => m == M::Mov && reg_op(i, 0).is_some_and(|r| r.is_cr()),
        K::MovFromCr => m == M::Mov && reg_op(i, 1).is_some_and(|r| r.is_cr()),
        K::MovToDr => m == M::Mov && reg_op(i, 0).is_some_and(|r| r.is_dr()),
        K::MovFromDr => m == M::Mov && reg_op(i, 1).is_some_and(|r| r.is_dr()),
        K::MovToSeg => m == M::Mov && is_seg(reg_op(i, 0)),
        K::MovFromSeg => m == M::Mov && is_seg(reg_op(i, 1)),
        K::PushSeg => m == M::Push && is_fs_gs(reg_op(i, 0)),
        K::PopSeg => m == M::Pop && is_fs_gs(reg_op(i, 0)),
        K::Lgdt => m == M::Lgdt,
        K::Lidt => m == M::Lidt,
        K::Lldt => m == M::Lldt,
        K::Ltr => m == M::Ltr,
        K::Sgdt => m == M::Sgdt,
        K::Sidt => m == M::Sidt,
        K::Sldt => m == M::Sldt,
        K::Str => m == M::Str,
        K::Smsw => m == M::Smsw,
        K::Lmsw => m == M::Lmsw,
        K::Clts => m == M::Clts,
        K::Invlpg => m == M::Invlpg,
        K::Invpcid => m == M::Invpcid,
        K::Invd => m == M::Invd,
        K::Wbinvd => matches!(m, M::Wbinvd | M::Wbnoinvd),
        K::Rdmsr => m == M::Rdmsr,
        K::Wrmsr => matches!(m, M::Wrmsr | M::Wrmsrns),
        K::Rdtsc => m == M::Rdtsc,
        K::Rdtscp => m == M::Rdtscp,
        K::Rdpmc => m == M::Rdpmc,
        K::Cpuid => m == M::Cpuid,
        K::Swapgs => m == M::Swapgs,
        K::Sysret => m == M::Sysret || m == M::Sysretq,
        K::Sysexit => m == M::Sysexit || m == M::Sysexitq,
        K::RdFsBase => m == M::Rdfsbase,
        K::RdGsBase => m == M::Rdgsbase,
        K::WrFsBase => m == M::Wrfsbase,
        K::WrGsBase => m == M::Wrgsbase,
        K::Xsetbv => m == M::Xsetbv,
        K::Monitor => matches!(m, M::Monitor | M::Monitorx),
        K::Mwait => matches!(m, M::Mwait | M::Mwaitx),
        K::Stac => m == M::Stac,
        K::Clac => m == M::Clac,
        K::Lar => m == M::Lar,
        K::Lsl => m == M::Lsl,
        K::Verr => m == M::Verr,
        K::Verw => m == M::Verw,
        K::Vmcall => m == M::Vmcall,
        K::Vmmcall => m == M::Vmmcall,
        K::Xsaves => matches!(m, M::Xsaves | M::Xsaves64),
        K::Xrstors => matches!(m, M::Xrstors | M::Xrstors64),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use annotations::Operands;

    fn site(kind: SensitiveKind, insn_len: u8) -> Site {
        Site {
            addr: 0xffff_ffff_8010_0000,
            record: 0x10,
            insn_len,
            site_len: annotations::site_len(kind, insn_len),
            kind,
            operands: Operands::NONE,
            flags: 0,
        }
    }

    fn padded(code: &[u8], len: u8) -> Vec<u8> {
        let mut v = code.to_vec();
        v.resize(usize::from(len), 0);
        nop::fill(&mut v[code.len()..]);
        v
    }

    #[test]
    fn original_sites_decode_and_wrong_ones_are_named() {
        let s = site(SensitiveKind::Cli, 1);
        assert_eq!(
            decode(&s, &padded(&[0xfa], 8)).unwrap()[0].mnemonic(),
            Mnemonic::Cli
        );
        let e = decode(&s, &padded(&[0xfb], 8)).unwrap_err();
        assert!(e.contains("`sti`") && e.contains("not a cli"), "{e}");
        let mut bad = padded(&[0xfa], 8);
        bad[7] = 0xcc;
        assert!(decode(&s, &bad).unwrap_err().contains("padding"));
        let p = site(SensitiveKind::StiHlt, 2);
        assert_eq!(decode(&p, &padded(&[0xfb, 0xf4], 16)).unwrap().len(), 2);
        let cr3 = site(SensitiveKind::MovToCr, 3);
        assert!(decode(&cr3, &padded(&[0x0f, 0x22, 0xd8], 8)).is_ok());
        let from_cr = site(SensitiveKind::MovFromCr, 3);
        assert!(decode(&from_cr, &padded(&[0x0f, 0x22, 0xd8], 8)).is_err());
        let seg = site(SensitiveKind::MovToSeg, 2);
        assert!(decode(&seg, &padded(&[0x8e, 0xd8], 8)).is_ok()); // mov %eax, %ds
    }
}
