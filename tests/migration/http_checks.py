"""HTTP checks of tests/migration/upgrade.sh against a running server, many
in one process (a shell with curl and a JSON tool per check is slow on a
loaded machine).

usage: http_checks.py BASE TOKEN < SPEC
BASE is the FHIR base (http://127.0.0.1:PORT/fhir), TOKEN a bearer token.
SPEC has one check a line, fields separated by tabs:
  search  QUERY  [ID ...]    the search finds exactly these resources (total
                             and entries, up to 100); QUERY is
                             Type?name=value&... with the values as they
                             are (percent-encoded here)
  total   QUERY  N           its total is N
  first   QUERY  ID          its first entry is ID
  status  PATH   CODE        GET PATH answers CODE
  read    PATH   CODE  BODY  GET PATH answers CODE and, for 200, exactly BODY
  version PATH   V           GET PATH answers 200 with meta.versionId V, or
                             410 when V is "deleted"
  field   PATH   DOTTED VAL  GET PATH answers 200 and the member at DOTTED
                             (valueQuantity.value) prints as VAL
Prints one line a check: "ok   WHAT" or "FAIL WHAT: got ..., want ...".
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request


def encode(query):
    path, _, q = query.partition("?")
    out = []
    for kv in q.split("&") if q else []:
        k, _, v = kv.partition("=")
        out.append(urllib.parse.quote(k, safe=":_-.") + "=" + urllib.parse.quote(v, safe=""))
    return path + ("?" + "&".join(out) if out else "")


def get(base, token, path):
    req = urllib.request.Request(base + "/" + path, headers={
        "Authorization": "Bearer " + token, "Accept": "application/fhir+json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def matches(body):
    b = json.loads(body)
    ids = [e["resource"]["id"] for e in b.get("entry", [])
           if e.get("search", {}).get("mode", "match") == "match"]
    return b.get("total"), ids


def check(base, token, kind, arg, rest):
    if kind in ("search", "total", "first"):
        path = encode(arg)
        if kind == "search":
            path += ("&" if "?" in path else "?") + "_count=100"
        code, body = get(base, token, path)
        if code != 200:
            return arg, "status %d" % code, "200"
        total, ids = matches(body)
        if kind == "search":
            want = sorted(rest)
            got = "%s %s" % (total, " ".join(sorted(ids)))
            return arg, got.strip(), ("%d %s" % (len(want), " ".join(want))).strip()
        if kind == "total":
            return arg + " (total)", str(total), rest[0]
        return arg + " (first entry)", ids[0] if ids else "", rest[0]
    code, body = get(base, token, arg)
    if kind == "status":
        return "GET %s: status" % arg, str(code), rest[0]
    if kind == "read":
        if str(code) != rest[0]:
            return "GET %s: status" % arg, str(code), rest[0]
        if code == 200 and body.decode() != rest[1]:
            return "GET %s: the same bytes" % arg, body.decode(), rest[1]
        return "GET %s: as the old server answered" % arg, "", ""
    if kind == "version":
        if rest[0] == "deleted":
            return "GET %s: status" % arg, str(code), "410"
        if code != 200:
            return "GET %s: status" % arg, str(code), "200"
        return "GET %s: meta.versionId" % arg, json.loads(body)["meta"]["versionId"], rest[0]
    if kind == "field":
        if code != 200:
            return "GET %s: status" % arg, str(code), "200"
        v = json.loads(body)
        for k in rest[0].split("."):
            v = v.get(k) if isinstance(v, dict) else None
        return "GET %s: %s" % (arg, rest[0]), json.dumps(v), rest[1]
    raise SystemExit("unknown check " + kind)


def main():
    base, token = sys.argv[1], sys.argv[2]
    for line in sys.stdin.read().splitlines():
        if not line.strip():
            continue
        kind, arg, *rest = line.split("\t")
        rest = [r for r in rest if r != ""] if kind == "search" else rest
        try:
            what, got, want = check(base, token, kind, arg, rest)
        except Exception as e:  # a malformed answer: a failed check, not a crash
            what, got, want = "%s %s" % (kind, arg), "error %r" % e, "an answer"
        if got == want:
            print("ok   " + what)
        else:
            print("FAIL %s: got '%s', want '%s'" % (what, got[:300], want[:300]))
        sys.stdout.flush()


main()
