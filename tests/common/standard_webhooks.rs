//! Signed-webhook requests checked with the independent Python
//! `standardwebhooks` package (installed by `cargo xtask test`).

use serde_json::{json, Value};
use wiremock::Request;

/// Verifies a received request against `secret` (`whsec_…`) and returns
/// what the package parsed; panics when it refuses the signature.
pub fn verify_with_python(request: &Request, secret: &str) -> Value {
    let python_path = std::env::var("LEAD_NOTIFIER_TEST_PYTHONPATH")
        .expect("LEAD_NOTIFIER_TEST_PYTHONPATH is not set: run the tests with `cargo xtask test`, which installs the Python standardwebhooks package");
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let script = r#"
import json, sys
from standardwebhooks import Webhook
secret, body, headers = sys.argv[1], sys.stdin.read(), json.loads(sys.argv[2])
print(json.dumps(Webhook(secret).verify(body, headers)))
"#;
    let headers = json!({
        "webhook-id": header("webhook-id"),
        "webhook-timestamp": header("webhook-timestamp"),
        "webhook-signature": header("webhook-signature"),
    });
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret, &headers.to_string()])
        .env("PYTHONPATH", python_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for the Standard Webhooks check: install Python 3");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &request.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "Python standardwebhooks refused the signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("verified JSON")
}
