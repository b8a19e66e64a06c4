//! `afterburn-run`: runs a guest kernel on KVM. See docs/loader.md.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(loader::cli::main_with_args(std::env::args_os()))
}
