"""Checks every .bicep file under infra/ with tools independent of Azure:
pycep-parser (a Bicep parser) must parse it, and checkov's Bicep checks must
pass, apart from checks skipped in the template with a written reason.
Run by tests/infra.rs with PYTHONPATH set by `cargo xtask test`.
Prints one JSON object; exits 1 when something fails."""

import contextlib
import io
import json
import re
import sys
from pathlib import Path

from pycep import BicepParser

infra = Path(sys.argv[1])
problems = []
files = sorted(infra.rglob("*.bicep"))
if not files:
    problems.append(f"no .bicep files under {infra}")

skip = re.compile(r"checkov:skip=([A-Za-z0-9_]+)(:?)(.*)")
for path in files:
    text = path.read_text()
    try:
        BicepParser().parse(text=text)
    except Exception as e:  # the parser raises lark's many error types
        problems.append(f"{path}: pycep cannot parse it: {str(e).splitlines()[0]}")
    for number, line in enumerate(text.splitlines(), 1):
        m = skip.search(line)
        if m and (not m.group(2) or len(m.group(3).strip()) < 10):
            problems.append(f"{path}:{number}: {m.group(1)} is skipped without a reason")

from checkov.common.bridgecrew.check_type import CheckType  # noqa: E402
from checkov.main import Checkov  # noqa: E402

out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
    Checkov(argv=["-d", str(infra), "--framework", CheckType.BICEP, "--skip-download",
                  "--quiet", "--compact", "-o", "json"]).run()
text = out.getvalue()
report = json.loads(text[text.index("{"):]) if "{" in text else {}
if isinstance(report, list):
    report = report[0] if report else {}
summary = report.get("summary", {})
results = report.get("results", {})
for failed in results.get("failed_checks", []):
    problems.append(f"checkov {failed['check_id']} ({failed['check_name']}) fails for "
                    f"{failed['resource']} in {failed['file_path']}")
if summary.get("parsing_errors", 0):
    problems.append(f"checkov could not parse {summary['parsing_errors']} file(s)")
if summary.get("passed", 0) == 0:
    problems.append(f"checkov ran no passing check (nothing scanned?): {summary}")

print(json.dumps({
    "files": [str(p.relative_to(infra)) for p in files],
    "passed": summary.get("passed", 0),
    "skipped": summary.get("skipped", 0),
    "problems": problems,
}))
sys.exit(1 if problems else 0)
