//! The `homeostat` binary: everything is in the library; this hands the command line to
//! [`homeostat::cli::main`].

fn main() -> std::process::ExitCode {
    homeostat::cli::main()
}
