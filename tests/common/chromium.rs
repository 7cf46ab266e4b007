//! Headless Chromium as every browser test starts it (each also gives a
//! fresh `--user-data-dir`).

/// Headless, no sandbox (containers), and nothing that reaches the network
/// on its own.
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];
