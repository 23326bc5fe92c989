#!/usr/bin/env python
"""Compare an Autobahn|TestSuite report with the committed baseline, or rewrite the baseline.
Runs under Python 2.7 or 3, stdlib only.

usage: baseline.py compare|update ROLE INDEX_JSON BASELINE_JSON [--agent NAME] [--partial]

The baseline (tests/autobahn/expected-results.json) maps role -> case id -> the two verdicts:
  {"server": {"1.1.1": {"behavior": "OK", "behaviorClose": "OK"}, ...}, "client": {...}}
compare: prints one line per case whose behavior or behaviorClose differs, per case missing
         from the report, and per case the baseline does not know.
         exit 0 = same; 1 = differences; 2 = no baseline file / no ROLE in it; 3 = unusable report.
update:  writes the ROLE's verdicts into BASELINE_JSON (other roles kept), one case per line,
         roles and case ids sorted (case ids numerically), so diffs stay small. exit 0, or 3.
--partial: the run selected only some cases (--cases/--exclude): compare only the cases in
         the report, and on update merge them into the role instead of replacing it.
"""
from __future__ import print_function

import json
import os
import sys

FIELDS = ("behavior", "behaviorClose")


def case_key(case_id):
    out = []
    for part in case_id.split("."):
        try:
            out.append((0, int(part), ""))
        except ValueError:
            out.append((1, 0, part))
    return out


def load_report(path, agent):
    if os.path.isdir(path):
        path = os.path.join(path, "index.json")
    with open(path) as f:
        index = json.load(f)
    if agent is None:
        if len(index) != 1:
            raise ValueError("%s has %d agents (%s); pass --agent" % (path, len(index), ", ".join(sorted(index))))
        agent = list(index)[0]
    if agent not in index:
        raise ValueError("agent %r not in %s" % (agent, path))
    return dict((cid, dict((k, str(c.get(k, "MISSING"))) for k in FIELDS))
                for cid, c in index[agent].items())


def dump(baseline):
    lines = ["{"]
    roles = sorted(baseline)
    for r, role in enumerate(roles):
        cases = baseline[role]
        lines.append("  %s: {" % json.dumps(role))
        ids = sorted(cases, key=case_key)
        for i, cid in enumerate(ids):
            v = cases[cid]
            lines.append("    %s: {%s}%s" % (
                json.dumps(cid),
                ", ".join("%s: %s" % (json.dumps(k), json.dumps(v[k])) for k in FIELDS),
                "," if i + 1 < len(ids) else ""))
        lines.append("  }%s" % ("," if r + 1 < len(roles) else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv):
    args = list(argv)
    agent, partial, pos = None, False, []
    while args:
        a = args.pop(0)
        if a == "--agent":
            agent = args.pop(0)
        elif a == "--partial":
            partial = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            pos.append(a)
    if len(pos) != 4 or pos[0] not in ("compare", "update"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, role, report_path, baseline_path = pos
    tag = "autobahn %s" % role
    try:
        report = load_report(report_path, agent)
    except (IOError, OSError, ValueError) as e:
        print("%s: no usable report: %s" % (tag, e), file=sys.stderr)
        return 3

    baseline = {}
    if os.path.exists(baseline_path):
        with open(baseline_path) as f:
            baseline = json.load(f)

    if cmd == "update":
        cases = dict(baseline.get(role, {})) if partial else {}
        cases.update(report)
        baseline[role] = cases
        tmp = baseline_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(dump(baseline))
        os.rename(tmp, baseline_path)
        print("%s: wrote %d cases to %s%s" % (tag, len(cases), baseline_path,
                                              " (merged: partial run)" if partial else ""))
        return 0

    if not os.path.exists(baseline_path):
        print("%s: no baseline: %s does not exist (run with --update-baseline to create it, then commit it)"
              % (tag, baseline_path))
        return 2
    if role not in baseline:
        print("%s: the baseline %s has no %r section (run with --update-baseline to add it, then commit it)"
              % (tag, baseline_path, role))
        return 2
    expected = baseline[role]
    diffs = []
    for cid in sorted(set(report) | set(expected), key=case_key):
        got, want = report.get(cid), expected.get(cid)
        if got is None:
            if not partial:
                diffs.append("%s: in the baseline (%s) but not in this run"
                             % (cid, ", ".join("%s=%s" % (k, want[k]) for k in FIELDS)))
        elif want is None:
            diffs.append("%s: not in the baseline; this run: %s"
                         % (cid, ", ".join("%s=%s" % (k, got[k]) for k in FIELDS)))
        else:
            changed = ["%s: baseline %s, now %s" % (k, want.get(k), got[k])
                       for k in FIELDS if want.get(k) != got[k]]
            if changed:
                diffs.append("%s: %s" % (cid, "; ".join(changed)))
    for d in diffs:
        print("  DIFF   %s" % d)
    compared = len(report) if partial else len(set(report) | set(expected))
    if diffs:
        print("%s: %d of %d cases differ from the baseline %s"
              % (tag, len(diffs), compared, baseline_path))
        return 1
    print("%s: all %d cases match the baseline %s" % (tag, compared, baseline_path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
