//! Every form in tests/vectors/sensitive.txt, assembled by GNU `as`, classifies as its line says.

use afterburner::sensitive::{classify, pairs_with};
use annotations::SensitiveKind;
use iced_x86::{Decoder, DecoderOptions, Instruction};
use std::path::Path;
use std::process::Command;

/// Assembles `source` with `as --64` and returns the bytes of `.text`.
fn assemble(source: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("v.s");
    let o = dir.path().join("v.o");
    let bin = dir.path().join("v.bin");
    std::fs::write(&s, source).unwrap();
    let st = Command::new("as")
        .arg("--64")
        .arg("-o")
        .arg(&o)
        .arg(&s)
        .status()
        .expect("GNU as (binutils) is required");
    assert!(st.success(), "as failed on the vector file");
    let st = Command::new("objcopy")
        .args(["-O", "binary", "--only-section=.text"])
        .arg(&o)
        .arg(&bin)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read(&bin).unwrap()
}

fn decode_all(bytes: &[u8]) -> Vec<Instruction> {
    let mut d = Decoder::new(64, bytes, DecoderOptions::NONE);
    let mut v = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        assert!(!i.is_invalid(), "undecodable vector bytes at {:#x}", i.ip());
        v.push(i);
    }
    v
}

#[test]
fn every_vector_classifies_as_listed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sensitive.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let vectors: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, a) = l.split_once('|').expect("`kind | asm`");
            (k.trim(), a.trim())
        })
        .collect();
    let source: String = vectors.iter().map(|(_, a)| format!("\t{a}\n")).collect();
    let insns = decode_all(&assemble(&source));
    assert_eq!(
        insns.len(),
        vectors.len(),
        "one instruction per vector line"
    );
    let mut seen = std::collections::BTreeSet::new();
    for ((kind, asm), insn) in vectors.iter().zip(&insns) {
        let got = classify(insn).map(|c| c.kind.name());
        let want = if *kind == "-" { None } else { Some(*kind) };
        assert_eq!(got, want, "`{asm}`");
        if let Some(c) = classify(insn) {
            seen.insert(c.kind);
        }
    }
    // Every kind but the pair (tested below) has at least one vector.
    for k in SensitiveKind::ALL {
        if *k != SensitiveKind::StiHlt {
            assert!(seen.contains(k), "no vector for {k}");
        }
    }
}

#[test]
fn sti_hlt_is_a_pair_but_sti_nop_hlt_is_not() {
    let insns = decode_all(&assemble("sti\nhlt\nsti\nnop\nhlt\n"));
    let c = classify(&insns[0]).unwrap();
    assert!(pairs_with(&c, &insns[1]));
    let c = classify(&insns[2]).unwrap();
    assert!(!pairs_with(&c, &insns[3]));
}
