fn main() { /* WIP: lead_notifier::cli::main() */ }
