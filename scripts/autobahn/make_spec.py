#!/usr/bin/env python
"""Write a runnable wstest spec from a committed template (Python 2.7 or 3, stdlib only).

usage: make_spec.py TEMPLATE OUT_SPEC --url URL --outdir DIR --agent NAME --cases LIST --exclude LIST

TEMPLATE is tests/autobahn/fuzzingclient.json or fuzzingserver.json. Its "options" and any
other settings are kept; url (fuzzingserver) or servers[] (fuzzingclient), outdir, cases and
exclude-cases are set from the arguments. LIST: case patterns separated by commas and/or
spaces ("*", "1.*", "9.1.2"); an empty LIST is an empty list.
"""
from __future__ import print_function

import json
import re
import sys


def patterns(text):
    items = [p for p in re.split(r"[,\s]+", text) if p]
    for p in items:
        if not re.match(r"^[0-9.*]+$", p):
            raise ValueError("bad case pattern %r (use e.g. 1.*, 9.1.2, *)" % p)
    return items


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    template, out = argv[0], argv[1]
    opts = {}
    rest = argv[2:]
    if len(rest) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    for i in range(0, len(rest), 2):
        opts[rest[i].lstrip("-")] = rest[i + 1]
    try:
        with open(template) as f:
            spec = json.load(f)
        spec.pop("_comment", None)
        spec["outdir"] = opts["outdir"]
        if "servers" in spec:  # fuzzingclient: the suite tests these servers
            spec["servers"] = [{"agent": opts["agent"], "url": opts["url"]}]
        else:  # fuzzingserver: the suite listens at url
            spec["url"] = opts["url"]
        spec["cases"] = patterns(opts["cases"])
        spec["exclude-cases"] = patterns(opts["exclude"])
    except (KeyError, ValueError, IOError) as e:
        print("make_spec.py: %s" % e, file=sys.stderr)
        return 2
    with open(out, "w") as f:
        json.dump(spec, f, indent=2, sort_keys=True)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
