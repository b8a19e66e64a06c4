//! Every sensitive form of tests/vectors/sensitive.txt, assembled by GNU `as` and burnt: one
//! record per sensitive line (none for `-` lines), each instruction kept byte for byte and
//! followed by exactly the padding `annotations::nop::fill` writes, up to `site_len`.

mod common;
use annotations::{nop, site_len};
use common::*;
use std::path::Path;

#[test]
fn each_sensitive_kind_is_padded_and_recorded() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/sensitive.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let vectors: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, a) = l.split_once('|').unwrap();
            (k.trim().to_owned(), a.trim().to_owned())
        })
        .collect();
    let w = Work::new();
    let src: String = vectors.iter().map(|(_, a)| format!("\t{a}\n")).collect();
    let s = w.write("v.s", &format!("\t.text\n{src}"));
    let o = w.path("v.o");
    run(std::process::Command::new("as").arg("--64").arg(&s).arg("-o").arg(&o));
    let b = w.path("v.burnt.o");
    burn(&o, &b);
    compare_code(&o, &b, Nops::InSitesOnly);
    let orig_insns = raw_insns(&o, ".text");
    assert_eq!(orig_insns.len(), vectors.len());
    let burnt_text = section_bytes(&b, ".text");
    let sites = afterburn_sites(&b);
    type Expected<'a> = Vec<(&'a str, &'a (u64, Vec<u8>, String))>;
    let expected: Expected<'_> = vectors
        .iter()
        .zip(&orig_insns)
        .filter(|((k, _), _)| k != "-")
        .map(|((k, _), i)| (k.as_str(), i))
        .collect();
    assert_eq!(sites.len(), expected.len(), "one record per sensitive vector");
    let mut seen = std::collections::BTreeSet::new();
    for (site, (kind, insn)) in sites.iter().zip(&expected) {
        assert_eq!(site.record.kind.name(), *kind, "vector `{}`", insn.2);
        assert_eq!(usize::from(site.record.insn_len), insn.1.len());
        assert_eq!(site.record.site_len, site_len(site.record.kind, site.record.insn_len));
        let start = site.offset as usize;
        let mid = start + insn.1.len();
        let end = start + usize::from(site.record.site_len);
        if insn.2.contains("(%rip)") {
            // RIP-relative operands resolved by the assembler get a new displacement (the
            // last 4 bytes here, as no vector has an immediate after it); compare_code
            // below checks they still reach the same instruction.
            assert_eq!(&burnt_text[start..mid - 4], &insn.1[..insn.1.len() - 4], "`{}`", insn.2);
        } else {
            assert_eq!(
                &burnt_text[start..mid],
                &insn.1[..],
                "instruction bytes kept for `{}`",
                insn.2
            );
        }
        assert!(nop::is_padding(&burnt_text[mid..end]), "padding after `{}`", insn.2);
        seen.insert(site.record.kind);
    }
    assert!(
        seen.len() >= annotations::SensitiveKind::ALL.len() - 1,
        "every kind but the pair has a vector"
    );
}
