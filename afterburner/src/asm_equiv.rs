//! Are two relocatable objects what `as` makes of the same input? The check behind the macro
//! expander ([`crate::gas_macro`]): the expanded text, assembled, must give the object the
//! original text gives.
//!
//! Compared: every section (name, type, flags, alignment, entry size, size, bytes; `.group`
//! members and signature by name), every relocation (offset, type, addend, and the symbol by
//! name, or by section for section symbols), and the symbol table as a set of (name, value,
//! size, type, binding, visibility, section). Not compared as bytes: symbol and string tables
//! and relocation sections (their order and indices may differ: the probe adds labels whose
//! names start with a given prefix, and those are ignored).

use crate::verify::elf::{Object, Place, Symbol};
use object::elf;

/// What a symbol is, independent of its index.
fn symbol_key(o: &Object<'_>, s: &Symbol) -> String {
    let place = match s.place {
        Place::Undefined => "UND".to_string(),
        Place::Absolute => "ABS".to_string(),
        Place::Common => "COM".to_string(),
        Place::Other(x) => format!("shndx {x}"),
        Place::Section(i) => o
            .sections
            .get(i)
            .map_or_else(|| format!("section {i}"), |x| format!("{}#{}", x.name, x.ordinal)),
    };
    if s.is_section() {
        format!("section symbol of {place}")
    } else {
        format!(
            "{} in {place} value {:#x} size {:#x} type {} bind {} other {}",
            s.name, s.value, s.size, s.st_type, s.bind, s.other
        )
    }
}

fn reloc_symbol(o: &Object<'_>, sym: usize) -> String {
    match o.symbols.get(sym) {
        None => format!("symbol #{sym}"),
        Some(s) if s.is_section() => symbol_key(o, s),
        Some(s) => s.name.clone(),
    }
}

/// Compares `a` (the original's object) with `b`, ignoring symbols of `b` whose names start
/// with `ignore`. Returns the first difference.
pub fn compare(a: &[u8], b: &[u8], ignore: &str) -> Result<(), String> {
    let oa = Object::parse("original", a).map_err(|e| e.to_string())?;
    let ob = Object::parse("expanded", b).map_err(|e| e.to_string())?;
    if oa.sections.len() != ob.sections.len() {
        let names = |o: &Object<'_>| {
            o.sections
                .iter()
                .skip(1)
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        return Err(format!(
            "sections differ: [{}] vs [{}]",
            names(&oa),
            names(&ob)
        ));
    }
    for (i, (x, y)) in oa.sections.iter().zip(&ob.sections).enumerate().skip(1) {
        // Tables whose size and bytes depend on the symbols (the probe adds some).
        let table = matches!(
            x.sh_type,
            t if t == elf::SHT_SYMTAB.0 || t == elf::SHT_STRTAB.0 || t == elf::SHT_RELA.0
                || t == elf::SHT_REL.0
        );
        let head = |s: &crate::verify::elf::Section<'_>| {
            (
                s.name.clone(),
                s.sh_type,
                s.flags,
                s.addralign,
                s.entsize,
                if table { 0 } else { s.size },
            )
        };
        if head(x) != head(y) {
            return Err(format!(
                "section {i}: {:?} vs {:?} (name, type, flags, align, entsize, size)",
                head(x),
                head(y)
            ));
        }
        let raw = !table;
        if raw && x.data != y.data {
            let at = x
                .data
                .iter()
                .zip(y.data)
                .position(|(p, q)| p != q)
                .unwrap_or(x.data.len().min(y.data.len()));
            return Err(format!("section {}: bytes differ at {at:#x}", x.name));
        }
        if x.sh_type == elf::SHT_GROUP.0 {
            let sa = usize::try_from(x.info).unwrap_or(usize::MAX);
            let sb = usize::try_from(y.info).unwrap_or(usize::MAX);
            if reloc_symbol(&oa, sa) != reloc_symbol(&ob, sb) {
                return Err(format!("group {}: signatures differ", x.name));
            }
        }
        if x.relocs.len() != y.relocs.len() {
            return Err(format!(
                "section {}: {} vs {} relocations",
                x.name,
                x.relocs.len(),
                y.relocs.len()
            ));
        }
        for (r, s) in x.relocs.iter().zip(&y.relocs) {
            let ka = (r.offset, r.r_type, r.addend, reloc_symbol(&oa, r.sym));
            let kb = (s.offset, s.r_type, s.addend, reloc_symbol(&ob, s.sym));
            if ka != kb {
                return Err(format!(
                    "section {}: relocation at {:#x} differs: {ka:?} vs {kb:?}",
                    x.name, r.offset
                ));
            }
        }
    }
    let keys = |o: &Object<'_>, skip: &str| {
        let mut v: Vec<String> = o
            .symbols
            .iter()
            .skip(1)
            .filter(|s| skip.is_empty() || !s.name.starts_with(skip))
            .map(|s| symbol_key(o, s))
            .collect();
        v.sort_unstable();
        v
    };
    let (ka, kb) = (keys(&oa, ""), keys(&ob, ignore));
    if ka != kb {
        let only_a = ka.iter().find(|k| !kb.contains(k));
        let only_b = kb.iter().find(|k| !ka.contains(k));
        return Err(match (only_a, only_b) {
            (Some(a), _) => format!("symbol only in the original: {a}"),
            (None, Some(b)) => format!("symbol only in the expansion: {b}"),
            (None, None) => "symbol counts differ".to_string(),
        });
    }
    Ok(())
}
