fn main() -> std::process::ExitCode {
    lead_notifier::cli::main()
}
