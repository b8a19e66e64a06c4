fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let src = std::fs::read_to_string(&args[0]).unwrap();
    let mut opts = afterburner::asm_pad::Options::default();
    if args.get(1).map(String::as_str) == Some("preserve") {
        opts.layout = afterburner::asm_pad::Layout::Preserve;
    }
    match afterburner::asm_pad::pad(&src, &opts) {
        Ok(p) => print!("{}", p.text),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2)
        }
    }
}
