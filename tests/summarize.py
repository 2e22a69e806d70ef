#!/usr/bin/env python3
"""Sum up a `meson test` run: one line "N passed, N failed[, N skipped]".

meson counts test programs; this counts test cases: TAP lines of the GTest
programs (from meson's testlog.json) and the testcases of the pytest suites
(from the JUnit XML each writes).  A program that crashed before reporting
anything counts as one failure.
"""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

TAP = re.compile(r"^(not ok|ok)\b(.*)$")


def count_junit(path):
    p = f = s = 0
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            s += 1
        elif case.find("failure") is not None or case.find("error") is not None:
            f += 1
        else:
            p += 1
    return p, f, s


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    log = os.path.join(build, "meson-logs", "testlog.json")
    passed = failed = skipped = 0
    with open(log) as fh:
        entries = [json.loads(line) for line in fh if line.strip()]
    for e in entries:
        result = e.get("result", "")
        cmd = " ".join(e.get("command", []))
        junit = re.search(r"--junitxml=(\S+)", cmd)
        if junit and os.path.exists(junit.group(1)):
            p, f, s = count_junit(junit.group(1))
            if result not in ("OK", "SKIP") and f == 0:
                f = 1  # the runner itself failed (timeout, crash)
        else:
            p = f = s = 0
            for line in (e.get("stdout") or "").splitlines():
                m = TAP.match(line.strip())
                if not m:
                    continue
                if "# SKIP" in m.group(2).upper():
                    s += 1
                elif m.group(1) == "ok":
                    p += 1
                else:
                    f += 1
            if p + f + s == 0:
                if result == "OK":
                    p = 1
                elif result == "SKIP":
                    s = 1
                else:
                    f = 1
            elif result not in ("OK", "SKIP", "EXPECTEDFAIL") and f == 0:
                f = 1  # it reported cases, then died
        passed += p
        failed += f
        skipped += s
        print(f"  {e.get('name')}: {result} ({p} passed, {f} failed, {s} skipped)")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
