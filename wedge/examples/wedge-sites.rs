//! Lists the annotated sites of a linked kernel and checks them as the bare backend does:
//! `cargo run -p afterburn-wedge --example wedge-sites -- KERNEL`.
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: wedge-sites KERNEL");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let sites = match wedge::read_sites(&bytes) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("{}: no .afterburn section", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("{}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let mut image = match wedge::image::ElfImage::parse(&bytes) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    for s in &sites {
        let b = wedge::image::Image::read(&image, s.addr, usize::from(s.site_len));
        let text = match b {
            Ok(b) => match wedge::original::decode(s, &b) {
                Ok(i) => i
                    .iter()
                    .map(wedge::original::format_gas)
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(e) => format!("BAD: {e}"),
            },
            Err(e) => format!("BAD: {e}"),
        };
        println!(
            "{:#x} {:>12} {:2}+{:2} {}",
            s.addr,
            s.kind.name(),
            s.insn_len,
            s.site_len - s.insn_len,
            text
        );
    }
    match wedge::kvm::plan(&image, &sites) {
        Ok(p) => println!(
            "kvm: {} of {} sites rewritten, {} bytes of thunks",
            p.report.rewritten,
            p.report.sites,
            p.thunks.len()
        ),
        Err(e) => println!("kvm: {e}"),
    }
    match wedge::patch(&mut image, &sites, &mut wedge::bare::Bare) {
        Ok(r) => {
            println!("{} sites, all original", r.sites);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
