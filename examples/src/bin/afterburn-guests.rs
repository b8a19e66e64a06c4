//! `afterburn-guests`: builds the example guest kernels (see docs/examples.md).
//!
//! ```text
//! afterburn-guests [--out DIR] [--afterburner PATH] [--kernel NAME]... [--list]
//! ```
//!
//! `--out` defaults to `<cargo target dir>/guests`; `--afterburner` defaults to the
//! `AFTERBURNER` environment variable and, when given, also builds the burnt kernels.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: afterburn-guests [--out DIR] [--afterburner PATH] [--kernel NAME]... [--list]

Builds the example guest kernels into DIR/native/<name> (default DIR: <target>/guests).
With --afterburner PATH (or the AFTERBURNER environment variable), also burns every object
with `PATH burn IN -o OUT` and links DIR/burnt/<name>.
--kernel NAME builds only that kernel (repeatable); --list prints the kernel names.";

struct Args {
    out: Option<PathBuf>,
    afterburner: Option<PathBuf>,
    kernels: Vec<String>,
    list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: None,
        afterburner: None,
        kernels: Vec::new(),
        list: false,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        let arg = arg.to_string_lossy().into_owned();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<std::ffi::OsString, String> {
            match &inline {
                Some(v) => Ok(v.into()),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "--out" | "-o" => args.out = Some(value("--out")?.into()),
            "--afterburner" => args.afterburner = Some(value("--afterburner")?.into()),
            "--kernel" | "-k" => args
                .kernels
                .push(value("--kernel")?.to_string_lossy().into_owned()),
            "--list" => args.list = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unexpected argument `{arg}`")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("afterburn-guests: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.list {
        for k in guests::KERNELS {
            println!("{}", k.name);
        }
        return ExitCode::SUCCESS;
    }
    let out_root = match args.out {
        Some(dir) => dir,
        None => match guests::default_out_root() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("afterburn-guests: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let mut opts = guests::BuildOptions::new(out_root);
    opts.afterburner = args.afterburner.or_else(|| {
        std::env::var_os("AFTERBURNER")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    opts.kernels = args.kernels;
    match guests::build_all(&opts) {
        Ok(built) => {
            for b in built {
                if !b.warnings.is_empty() {
                    eprint!("{}", b.warnings);
                }
                println!("{}", b.native.display());
                if let Some(burnt) = b.burnt {
                    println!("{}", burnt.display());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("afterburn-guests: {e}");
            ExitCode::FAILURE
        }
    }
}
