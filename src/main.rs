//! The `sigmaai` binary: the command line lives in the library (`sigmaai::cli`), which keeps
//! everything it starts `pub(crate)`.

fn main() -> std::process::ExitCode {
    sigmaai::cli::main()
}
