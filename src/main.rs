fn main() { lead_notifier::cli::main() }
