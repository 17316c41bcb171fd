"""Summarise one run of bench/h200/e2e.sh: OUT/junit.xml + OUT/records.jsonl -> OUT/summary.json
and OUT/summary.md (printed too).

Usage: python bench/h200/e2e_summary.py OUT [EXIT_CODE_OF_PYTEST]
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def outcomes(junit: str) -> list[dict]:
    if not os.path.exists(junit):
        return []
    rows = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        status, detail = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                status = {"failure": "failed"}.get(tag, tag)
                detail = (el.get("message") or el.text or "").strip().splitlines()
                detail = detail[0][:300] if detail else ""
                break
        rows.append({"test": f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}",
                     "status": status, "seconds": round(float(case.get("time", 0)), 1),
                     "detail": detail})
    return rows


def records(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> int:
    out = sys.argv[1]
    rc = int(sys.argv[2]) if len(sys.argv) > 2 else None
    tests = outcomes(os.path.join(out, "junit.xml"))
    recs = records(os.path.join(out, "records.jsonl"))
    counts = {}
    for t in tests:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    env = {k: v for k, v in os.environ.items() if k.startswith("SGLANG_DFLASH_E2E_")}
    summary = {"pytest_exit_code": rc, "counts": counts, "env": env, "tests": tests,
               "records": recs}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    lines = [f"# sglang-dflash device e2e: {counts} (pytest exit {rc})", "",
             "| test | status | s | detail |", "|---|---|---:|---|"]
    lines += [f"| {t['test']} | {t['status']} | {t['seconds']} | {t['detail'].replace('|', '/')} |"
              for t in tests]
    lines += ["", "## comparisons and measurements", ""]
    for r in recs:
        r = dict(r)
        name = r.pop("check")
        divs = r.pop("divergences", [])
        lines.append(f"- {name}: " + ", ".join(f"{k}={v}" for k, v in r.items()))
        lines += [f"  - {d}" for d in divs[:6]]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
