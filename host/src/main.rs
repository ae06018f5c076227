fn main() -> std::process::ExitCode {
    homeostat::cli::main()
}
