//! The guest-side runtime and the kvm backend's thunks run in the guest kernel's context,
//! which does not save SSE/x87/AVX state on entry: decode every byte of their code and prove
//! that no instruction touches that state.

use iced_x86::{CpuidFeature, Decoder, DecoderOptions, Instruction, OpKind};
use wedge::layout::{R_CPL0, R_SYSCALL, R_TEXT};
use wedge::runtime::{sym, BLOB_CPL0, BLOB_SYSCALL, BLOB_TEXT};

fn vector_state(i: &Instruction) -> Option<String> {
    for n in 0..i.op_count() {
        if i.op_kind(n) == OpKind::Register {
            let r = i.op_register(n);
            if r.is_xmm()
                || r.is_ymm()
                || r.is_zmm()
                || r.is_mm()
                || r.is_st()
                || r.is_k()
                || r.is_tmm()
            {
                return Some(format!("register {r:?}"));
            }
        }
    }
    for f in i.cpuid_features() {
        use CpuidFeature as F;
        let bad = matches!(
            f,
            F::FPU
                | F::FPU287
                | F::FPU387
                | F::MMX
                | F::SSE
                | F::SSE2
                | F::SSE3
                | F::SSSE3
                | F::SSE4_1
                | F::SSE4_2
                | F::SSE4A
                | F::AVX
                | F::AVX2
                | F::AVX512F
                | F::FXSR
                | F::XSAVE
                | F::XSAVEOPT
                | F::XSAVEC
                | F::XSAVES
                | F::F16C
                | F::FMA
                | F::AVX_VNNI
                | F::AMX_TILE
                | F::D3NOW
        ) || format!("{f:?}").starts_with("AVX");
        if bad {
            return Some(format!("CPUID feature {f:?}"));
        }
    }
    None
}

/// Decodes `code` (linear sweep from `ip`) and returns every offending instruction.
fn scan(name: &str, ip: u64, code: &[u8]) -> (usize, Vec<String>) {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut n = 0;
    let mut bad = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        n += 1;
        if i.is_invalid() {
            bad.push(format!("{name} {:#x}: undecodable", i.ip()));
        } else if let Some(why) = vector_state(&i) {
            bad.push(format!(
                "{name} {:#x}: `{}` uses {why}",
                i.ip(),
                wedge::original::format_gas(&i)
            ));
        }
    }
    (n, bad)
}

#[test]
fn runtime_code_uses_no_sse_x87_or_avx() {
    let code_len = usize::try_from(sym("wedge_code_end") - R_TEXT.va()).unwrap();
    let stubs_len = usize::try_from(sym("wedge_stubs_end") - R_CPL0.va()).unwrap();
    let mut total = 0;
    let mut bad = Vec::new();
    for (name, ip, code) in [
        ("text", R_TEXT.va(), &BLOB_TEXT[..code_len]),
        ("cpl0", R_CPL0.va(), &BLOB_CPL0[..stubs_len]),
        ("syscall", R_SYSCALL.va(), BLOB_SYSCALL),
    ] {
        let (n, b) = scan(name, ip, code);
        total += n;
        bad.extend(b);
    }
    assert!(total > 1000, "decoded only {total} instructions");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_scan_catches_vector_instructions() {
    // movaps %xmm0,(%rax); fxsave (%rax); fld1; paddb %mm0,%mm1; vzeroupper
    let code = [
        0x0f, 0x29, 0x00, 0x0f, 0xae, 0x00, 0xd9, 0xe8, 0x0f, 0xfc, 0xc8, 0xc5, 0xf8, 0x77,
    ];
    let (n, bad) = scan("sample", 0x1000, &code);
    assert_eq!(n, 5);
    assert_eq!(bad.len(), 5, "{bad:?}");
}

#[test]
fn thunks_use_no_sse_x87_or_avx() {
    // Thunks of every shape the backend makes: port (imm8 and %dx), register and memory operands.
    use annotations::{nop, Operands, SensitiveKind};
    use wedge::image::{Image, ImageError};
    const AT: u64 = 0xffff_ffff_8010_0000;
    struct Mem(Vec<u8>);
    impl Image for Mem {
        fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ImageError> {
            let o = (addr - AT) as usize;
            Ok(self.0[o..o + len].to_vec())
        }
        fn write(&mut self, _: u64, _: &[u8]) -> Result<(), ImageError> {
            Ok(())
        }
    }
    let forms: &[(SensitiveKind, &[u8])] = &[
        (SensitiveKind::In, &[0xe4, 0x80]),
        (SensitiveKind::Out, &[0xee]),
        (SensitiveKind::MovToCr, &[0x0f, 0x22, 0xdf]),
        (
            SensitiveKind::Lgdt,
            &[0x0f, 0x01, 0x15, 0x10, 0x00, 0x00, 0x00],
        ),
        (SensitiveKind::Invlpg, &[0x0f, 0x01, 0x3c, 0x24]),
        (SensitiveKind::Ltr, &[0x0f, 0x00, 0xd8]),
    ];
    let mut mem = Vec::new();
    let mut sites = Vec::new();
    for (kind, code) in forms {
        let insn_len = code.len() as u8;
        let site_len = annotations::site_len(*kind, insn_len);
        sites.push(wedge::Site {
            addr: AT + mem.len() as u64,
            record: 0,
            insn_len,
            site_len,
            kind: *kind,
            operands: Operands::NONE,
            flags: 0,
        });
        let start = mem.len();
        mem.extend_from_slice(code);
        mem.resize(start + usize::from(site_len), 0);
        nop::fill(&mut mem[start + code.len()..]);
    }
    let plan = wedge::kvm::plan(&Mem(mem), &sites).unwrap();
    assert!(!plan.thunks.is_empty());
    let (_, bad) = scan("thunks", wedge::layout::R_THUNKS.va(), &plan.thunks);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
