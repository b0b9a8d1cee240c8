#!/usr/bin/env python3
"""Generates src/fhir/search_params.c from the FHIR R4 (4.0.1) definitions.

The search-parameter tables of the served types (their names, kinds,
canonical URLs, FHIRPath expressions, descriptions and the JSON element
paths src/fhir/index.c walks) are derived from the official R4 package
hl7.fhir.r4.examples@4.0.1: its Bundle-searchParams.json (the spec's
search-parameters.json) and the StructureDefinition-<Type>.json of the
resources and data types the expressions walk through.

Run by hand when the served set or the translator changes; the build never
runs it and never touches the network:

    bash tests/setup.sh    # npm pack into tests/.cache, SHA-256 checked
    python3 scripts/gen-search-params.py tests/.cache/hl7.fhir.r4.examples-4.0.1.tgz

PACKAGE is the npm tarball or its unpacked directory (the one holding
package/ or the package/ directory itself). It also writes
tests/unit/fhir/r4_search_parameters.json: the url, code, type and base of
every R4 SearchParameter of the served types and Resource, copied from the
Bundle, against which tests/unit/fhir/test_types.c checks the tables and the
CapabilityStatement. --check writes nothing and exits 1 if either committed
file differs from what would be generated (the ctest
fhir_search_params_generated does this). Standard library only.

What is offered. For each served type, every R4 SearchParameter whose base
names the type is translated (translate_branch): an expression is a union
('|') of branches; a branch is a dotted path from the type, optionally
`(path as Type)` followed by more path, or a path ending in
`.where(resolve() is Type)`. Each step is resolved in the StructureDefinitions;
a choice element is spelled out per type (effective[x] -> effectiveDateTime
...), and the element reached must have a type that index.c handles for the
parameter's kind (INDEXABLE). A parameter is offered when every branch maps
exactly, or when what does not map is exactly what DEVIATIONS allows for it;
NOT_OFFERED lists parameters deliberately not served. Everything else is left
out, with the reason, in the generated file's header and on stdout.
"""
import argparse
import difflib
import io
import json
import os
import re
import sys
import tarfile

PACKAGE = "hl7.fhir.r4.examples@4.0.1"
BUNDLE = "package/Bundle-searchParams.json"
OUT_DEFAULT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                            "src", "fhir", "search_params.c"))
REFERENCE_DEFAULT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "unit", "fhir",
                                                  "r4_search_parameters.json"))
SCRIPT = "scripts/gen-search-params.py"

# The served types, in the order of vl_fhir_types[] (src/fhir/types.c); the
# table of type T is vl_fhir_params_<t> (array_name).
SERVED = ["Observation", "Patient", "Device", "Organization", "Practitioner", "Consent", "AuditEvent"]

# The parameters common to all types that the search parser handles itself
# (src/fhir/search.c); they are not indexed and not in the per-type tables.
COMMON = ["_id", "_lastUpdated"]

# R4 search parameter type -> vl_index_kind_t. Other R4 types (number, uri,
# composite, special) have no index kind.
KINDS = {
    "token": "VL_INDEX_TOKEN",
    "string": "VL_INDEX_STRING",
    "reference": "VL_INDEX_REFERENCE",
    "date": "VL_INDEX_DATE",
    "quantity": "VL_INDEX_QUANTITY",
}

# The FHIR types whose JSON shape index.c handles, per kind (the list of
# "Shapes per kind" in its design notes).
INDEXABLE = {
    "token": {"CodeableConcept", "Coding", "Identifier", "ContactPoint", "code", "id", "uri",
              "string", "boolean"},
    "string": {"string", "HumanName", "Address"},
    "reference": {"Reference"},
    "date": {"date", "dateTime", "instant", "Period", "Timing"},
    "quantity": {"Quantity"},
}

# Offered although part of the expression is not indexed: (type, name) ->
# {the JSON element not indexed: why}. The generator fails if what it cannot
# map for such a parameter is not exactly this, so the list stays true.
DEVIATIONS = {
    ("Observation", "value-quantity"): {
        "valueSampledData": "the bounds of sampled data are not indexed",
    },
    ("Observation", "component-value-quantity"): {
        "component.valueSampledData": "the bounds of sampled data are not indexed",
    },
    ("Observation", "combo-value-quantity"): {
        "valueSampledData": "the bounds of sampled data are not indexed",
        "component.valueSampledData": "the bounds of sampled data are not indexed",
    },
}

# R4 parameters of a served type that are deliberately not served, whatever
# their translation would give: (type, name) -> why.
NOT_OFFERED = {}

# Parameters whose values the store keeps sort keys for (_sort): every date
# parameter, and these (each costs a row per version that has a value).
SORTABLE = {"code", "value-quantity", "family", "given", "name", "birthdate", "identifier"}

MAX_PATHS = 5  # vl_search_param_t.paths[6], NULL-terminated


class Untranslatable(Exception):
    pass


# the types the last translate() reached (to mark identifier parameters)
IDENTIFIER_SEEN = set()


# ---------------------------------------------------------------------------
# The package
# ---------------------------------------------------------------------------

class Package:
    def __init__(self, path):
        self._tar = None
        self._dir = None
        if not os.path.exists(path):
            raise SystemExit("%s: no such file or directory (the %s tarball; "
                             "bash tests/setup.sh fetches it into tests/.cache)" % (path, PACKAGE))
        if os.path.isdir(path):
            if os.path.isdir(os.path.join(path, "package")):
                self._dir = path
            else:  # the package/ directory itself
                self._dir = os.path.dirname(os.path.abspath(path))
        else:
            self._tar = tarfile.open(path, "r:gz")
        self._cache = {}
        meta = self.load("package/package.json")
        if "%s@%s" % (meta.get("name"), meta.get("version")) != PACKAGE:
            raise SystemExit("%s: not %s (found %s@%s)" % (path, PACKAGE, meta.get("name"),
                                                            meta.get("version")))

    def load(self, name):
        if name in self._cache:
            return self._cache[name]
        if self._tar is not None:
            try:
                f = self._tar.extractfile(name)
            except KeyError:
                f = None
            data = json.load(io.TextIOWrapper(f, encoding="utf-8-sig")) if f else None
        else:
            p = os.path.join(self._dir, name)
            data = None
            if os.path.exists(p):
                with open(p, encoding="utf-8-sig") as f:
                    data = json.load(f)
        self._cache[name] = data
        return data

    def structure(self, type_name):
        sd = self.load("package/StructureDefinition-%s.json" % type_name)
        if sd is None or sd.get("resourceType") != "StructureDefinition":
            raise Untranslatable("no StructureDefinition for %s in the package" % type_name)
        return sd


def element(pkg, sd_name, path):
    """The snapshot element of `path` (e.g. Observation.effective[x]) in the
    StructureDefinition `sd_name`, or None."""
    for el in pkg.structure(sd_name)["snapshot"]["element"]:
        if el["path"] == path:
            return el
    return None


def type_codes(el):
    return [t["code"] for t in el.get("type", [])]


# ---------------------------------------------------------------------------
# Translation of one expression branch
# ---------------------------------------------------------------------------

IDENT = r"[A-Za-z][A-Za-z0-9]*"
RE_CAST = re.compile(r"\((?P<path>%s(?:\.%s)+) as (?P<cast>%s)\)(?P<rest>(?:\.%s)*)" %
                     (IDENT, IDENT, IDENT, IDENT))
MAX_TARGETS = 12  # vl_search_param_t.targets holds at most this many (NULL-terminated)

RE_PATH = re.compile(r"(?P<path>%s(?:\.%s)+)(?:\.where\(resolve\(\) is (?P<target>%s)\))?" %
                     (IDENT, IDENT, IDENT))


def split_union(expr):
    """Splits a FHIRPath expression on its top-level '|'."""
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(expr):
        if ch == "'":
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expr[start:i].strip())
            start = i + 1
    parts.append(expr[start:].strip())
    return parts


def branch_type(branch):
    """The resource type a branch starts from."""
    m = re.match(r"\(?(%s)\." % IDENT, branch)
    return m.group(1) if m else None


class Walk:
    """Resolves element names step by step: `ctx` is (StructureDefinition
    name, element path inside it), `json` the JSON path so far."""

    def __init__(self, pkg, type_name):
        self.pkg = pkg
        self.ctx = (type_name, type_name)
        self.json = []
        self.types = [type_name]

    def step(self, name, cast=None, last=False):
        """One step; returns the FHIR types of the element reached (several
        for a choice element without a cast, then `self.json` lacks the
        last name: the caller spells it out)."""
        sd, path = self.ctx
        el = element(self.pkg, sd, path + "." + name)
        choice = False
        if el is None:
            el = element(self.pkg, sd, path + "." + name + "[x]")
            choice = el is not None
        if el is None:
            raise Untranslatable("%s.%s is not an element" % (path, name))
        if "contentReference" in el:
            ref = el["contentReference"].lstrip("#")
            el = element(self.pkg, sd, ref)
            self.ctx = (sd, ref)
            self.json.append(name)
            return type_codes(el)
        codes = type_codes(el)
        if choice:
            if cast is not None:
                if cast not in codes:
                    raise Untranslatable("%s is not a type of %s[x]" % (cast, el["path"]))
                self.json.append(name + cast[0].upper() + cast[1:])
                self.into(cast)
                return [cast]
            if not last:
                raise Untranslatable("choice element %s without a type" % el["path"])
            return codes
        if cast is not None and cast not in codes:
            raise Untranslatable("%s is not a type of %s" % (cast, el["path"]))
        if len(codes) != 1:
            raise Untranslatable("%s has %d types" % (el["path"], len(codes)))
        self.json.append(name)
        if codes[0] in ("BackboneElement", "Element"):
            self.ctx = (sd, el["path"])
        else:
            self.into(codes[0])
        return codes

    def into(self, type_name):
        if type_name[:1].isupper():  # a complex type: its own definition
            self.ctx = (type_name, type_name)
        else:  # a primitive: nothing to walk into
            self.ctx = (None, None)

    def step_checked(self, name, cast=None, last=False):
        if self.ctx[0] is None:
            raise Untranslatable("cannot walk into a primitive at %s" % name)
        return self.step(name, cast, last)


def translate_branch(pkg, type_name, kind, branch):
    """Returns (paths, dropped, target): the JSON paths that index the
    branch exactly, the JSON elements it names that index.c does not handle,
    and the reference target type from where(resolve() is T), or None.
    Raises Untranslatable."""
    m = RE_CAST.fullmatch(branch)
    target = None
    if m:
        steps = m.group("path").split(".")
        cast = m.group("cast")
        rest = [s for s in m.group("rest").split(".") if s]
    else:
        m = RE_PATH.fullmatch(branch)
        if not m:
            if ".where(" in branch:
                raise Untranslatable("a where() filter, which index.c cannot apply: %s" % branch)
            raise Untranslatable("FHIRPath the translator does not handle: %s" % branch)
        steps = m.group("path").split(".")
        cast = None
        rest = []
        target = m.group("target")
        if target and kind != "reference":
            raise Untranslatable("where(resolve() is ...) on a %s parameter" % kind)
    if steps[0] != type_name:
        raise Untranslatable("branch %s does not start at %s" % (branch, type_name))
    w = Walk(pkg, type_name)
    names = steps[1:]
    codes = None
    for i, name in enumerate(names):
        is_cast = cast is not None and i == len(names) - 1
        codes = w.step_checked(name, cast if is_cast else None,
                               last=(i == len(names) - 1 and not rest))
    for i, name in enumerate(rest):
        codes = w.step_checked(name, last=(i == len(rest) - 1))
    ok, dropped = [], []
    last = (rest or names)[-1]
    IDENTIFIER_SEEN.update(c for c in codes if c == "Identifier")
    if len(codes) > 1:  # a choice element at the end: spell it out
        for code in codes:
            p = ".".join(w.json + [last + code[0].upper() + code[1:]])
            (ok if code in INDEXABLE[kind] else dropped).append(p)
    else:
        p = ".".join(w.json)
        (ok if codes[0] in INDEXABLE[kind] else dropped).append(p)
    return ok, dropped, target


def translate_composite(pkg, type_name, sp, by_url):
    """A composite of a token and a quantity (code-value-quantity, ...):
    paths are the JSON paths of the elements that hold both ("" for the
    resource itself), parts the token's and the quantity's paths inside
    each. Other composites raise Untranslatable."""
    comps = sp.get("component", [])
    kinds = [by_url.get(c["definition"], {}).get("type") for c in comps]
    if kinds != ["token", "quantity"]:
        raise Untranslatable("composite of %s: only token $ quantity is indexed" %
                             " and ".join(str(k) for k in kinds))
    bases = [b for b in split_union(sp["expression"])
             if b == type_name or branch_type(b) == type_name]
    if not bases:
        raise Untranslatable("no expression for %s" % type_name)
    paths, parts = [], None
    for b in bases:
        rel = []
        for c, kind in zip(comps, kinds):
            e = c["expression"]
            m = re.fullmatch(r"(%s)\.as\((%s)\)" % (IDENT, IDENT), e)
            full = ("(%s.%s as %s)" % (b, m.group(1), m.group(2))) if m else "%s.%s" % (b, e)
            ok, dropped, _ = translate_branch(pkg, type_name, kind, full)
            if len(ok) != 1:
                raise Untranslatable("component %s gives %d paths" % (e, len(ok)))
            rel.append(ok[0])
        # the common prefix of the two paths is the base element
        a, q = rel[0].split("."), rel[1].split(".")
        n = 0
        while n < min(len(a), len(q)) - 1 and a[n] == q[n]:
            n += 1
        base = ".".join(a[:n])
        these = [".".join(a[n:]), ".".join(q[n:])]
        if parts is None:
            parts = these
        elif parts != these:
            raise Untranslatable("components differ between branches")
        if base not in paths:
            paths.append(base)
    return {
        "name": sp["code"],
        "kind": "VL_INDEX_COMPOSITE",
        "paths": paths,
        "parts": parts,
        "target": None,
        "description": description(sp, type_name),
        "url": sp["url"],
        "expression": sp["expression"],
        "dropped": [],
    }


def translate(pkg, type_name, sp, by_url=None):
    """Translates SearchParameter `sp` for `type_name`. Returns a dict with
    the table row, or raises Untranslatable."""
    kind = sp["type"]
    if kind == "composite":
        return translate_composite(pkg, type_name, sp, by_url or {})
    if kind not in KINDS:
        raise Untranslatable("R4 type %s: index.c has no such kind of index" % kind)
    if sp.get("xpathUsage", "normal") != "normal":
        raise Untranslatable("xpathUsage %s (not a plain element match)" % sp["xpathUsage"])
    expr = sp.get("expression")
    if not expr:
        raise Untranslatable("no expression")
    branches = [b for b in split_union(expr) if branch_type(b) == type_name]
    if not branches:
        raise Untranslatable("no expression for %s" % type_name)
    paths, dropped, targets = [], [], set()
    IDENTIFIER_SEEN.clear()
    for b in branches:
        ok, no, target = translate_branch(pkg, type_name, kind, b)
        paths += [p for p in ok if p not in paths]
        dropped += no
        targets.add(target)
    if len(targets) > 1:
        raise Untranslatable("branches with different reference targets")
    target = targets.pop()
    r4_targets = sp.get("target", [])
    if target is None and kind == "reference" and len(r4_targets) == 1:
        target = r4_targets[0]
    if target is not None and target not in r4_targets:
        raise Untranslatable("target %s is not an R4 target of the parameter" % target)
    if not paths:
        raise Untranslatable("no element index.c handles: %s" % ", ".join(dropped))
    if len(paths) > MAX_PATHS:
        raise Untranslatable("%d paths (at most %d)" % (len(paths), MAX_PATHS))
    return {
        "name": sp["code"],
        "kind": KINDS[kind],
        "paths": paths,
        "target": target,
        # the R4 target types, when they are few (a long list, as for
        # AuditEvent.entity's "any", is kept as "any type")
        "targets": sorted(r4_targets) if kind == "reference" and len(r4_targets) <= MAX_TARGETS else [],
        "description": description(sp, type_name),
        "url": sp["url"],
        "expression": " | ".join(branches),
        "dropped": dropped,
        "identifier": bool(IDENTIFIER_SEEN),
    }


def description(sp, type_name):
    """The R4 description for the type: a parameter shared by several
    resources lists one line per resource ("* [Type](type.html): text")."""
    text = sp.get("description", "")
    if text.startswith("Multiple Resources:"):
        m = re.search(r"^\* \[%s\]\([^)]*\): (.*?)\s*$" % re.escape(type_name), text, re.M)
        if not m:
            raise Untranslatable("no description line for %s" % type_name)
        return m.group(1)
    return text.strip()


# ---------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------

def build(pkg):
    bundle = pkg.load(BUNDLE)
    if bundle is None or bundle.get("resourceType") != "Bundle":
        raise SystemExit("%s: no %s" % (PACKAGE, BUNDLE))
    params = [e["resource"] for e in bundle["entry"]
              if e.get("resource", {}).get("resourceType") == "SearchParameter"]
    tables, left_out, deviations = {}, [], []
    seen_dev, seen_not = set(), set()
    by_url = {sp["url"]: sp for sp in params}
    for t in SERVED:
        rows = []
        for sp in params:
            if t not in sp.get("base", []):
                continue
            key = (t, sp["code"])
            if key in NOT_OFFERED:
                seen_not.add(key)
                left_out.append((t, sp["code"], sp["url"], NOT_OFFERED[key]))
                continue
            try:
                row = translate(pkg, t, sp, by_url)
            except Untranslatable as e:
                if key in DEVIATIONS:
                    raise SystemExit("%s %s: listed in DEVIATIONS but: %s" % (t, sp["code"], e))
                left_out.append((t, sp["code"], sp["url"], str(e)))
                continue
            allowed = DEVIATIONS.get(key, {})
            if key in DEVIATIONS:
                seen_dev.add(key)
            if set(row["dropped"]) != set(allowed):
                if key in DEVIATIONS:
                    raise SystemExit("%s %s: DEVIATIONS lists %s, the translation drops %s" %
                                     (t, sp["code"], sorted(allowed), sorted(row["dropped"])))
                left_out.append((t, sp["code"], sp["url"],
                                 "index.c does not handle %s" % ", ".join(row["dropped"])))
                continue
            for p in row["dropped"]:
                deviations.append((t, sp["code"], p, allowed[p]))
            rows.append(row)
        # a parameter whose expression is the union of two others' (the
        # combo-* of Observation: code | component.code) is searched as the
        # rows of both: it has no rows of its own
        by_expr = {r["expression"]: r["name"] for r in rows}
        for r in rows:
            parts = split_union(r["expression"])
            for k in range(1, len(parts)):
                a, b = " | ".join(parts[:k]), " | ".join(parts[k:])
                if a in by_expr and b in by_expr and r["name"] not in (by_expr[a], by_expr[b]):
                    r["union_of"] = [by_expr[a], by_expr[b]]
            # X.where(resolve() is T) of another parameter's X: that
            # parameter's rows, restricted to references to T
            m = re.fullmatch(r"(.*)\.where\(resolve\(\) is (%s)\)" % IDENT, r["expression"])
            if m and m.group(1) in by_expr and r["kind"] == "VL_INDEX_REFERENCE":
                r["rows_of"] = by_expr[m.group(1)]
        rows.sort(key=lambda r: r["name"])
        names = [r["name"] for r in rows]
        if len(set(names)) != len(names):
            raise SystemExit("%s: duplicate parameter names" % t)
        tables[t] = rows
    for key in set(DEVIATIONS) - seen_dev:
        raise SystemExit("DEVIATIONS: %s %s is not an R4 parameter that is offered" % key)
    for key in set(NOT_OFFERED) - seen_not:
        raise SystemExit("NOT_OFFERED: %s %s is not an R4 parameter" % key)

    common = []
    by_code = {sp["code"]: sp for sp in params if "Resource" in sp.get("base", [])}
    for code in COMMON:
        sp = by_code[code]
        common.append({"name": code, "kind": KINDS[sp["type"]], "paths": [], "target": None,
                       "description": sp["description"].strip(), "url": sp["url"],
                       "expression": sp["expression"], "dropped": []})
    for sp in params:
        base = sp.get("base", [])
        if ("Resource" in base or "DomainResource" in base) and sp["code"] not in COMMON:
            left_out.append(("(all)", sp["code"], sp["url"],
                             "common parameter the search parser does not handle"))
    return bundle, tables, common, left_out, deviations


# ---------------------------------------------------------------------------
# C output
# ---------------------------------------------------------------------------

def c_string(s):
    out = []
    for i, ch in enumerate(s):
        b = ch.encode("utf-8")
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "?" and (s[i + 1:i + 2] == "?" or s[i - 1:i] == "?"):
            out.append("\\?")  # no trigraphs
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif len(b) == 1 and 0x20 <= b[0] < 0x7f:
            out.append(ch)
        else:
            out.extend("\\%03o" % x for x in b)
    return '"' + "".join(out) + '"'


def c_wrapped(s, indent, width=98):
    """A C string literal, split into adjacent literals at spaces so that
    no line is longer than `width`."""
    room = width - indent - 3
    pieces, cur = [], ""
    for word in re.split(r"(?<= )", s):
        if cur and len(c_string(cur + word)) > room:
            pieces.append(cur)
            cur = ""
        cur += word
    pieces.append(cur)
    pad = " " * indent
    return ("\n" + pad).join(c_string(p) for p in pieces)


def comment_lines(text, prefix=" *   ", width=98):
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(prefix) + len(cur) + 1 + len(w) > width:
            lines.append(prefix + cur)
            cur = w
            prefix = " *     "
        else:
            cur = (cur + " " + w) if cur else w
    lines.append(prefix + cur)
    return lines


def row_c(r):
    field = "        "
    lines = ["    {"]
    lines.append(field + ".name = %s," % c_string(r["name"]))
    lines.append(field + ".kind = %s," % r["kind"])
    if r["paths"]:
        lines.append(field + ".paths = {%s}," % ", ".join(c_string(p) for p in r["paths"]))
    if r["target"]:
        lines.append(field + ".target = %s," % c_string(r["target"]))
    if r.get("targets") and not r["target"]:
        lines.append(field + ".targets = {%s}," % ", ".join(c_string(t) for t in r["targets"]))
    if r.get("rows_of"):
        lines.append(field + ".rows_of = %s," % c_string(r["rows_of"]))
    if r.get("union_of"):
        lines.append(field + ".union_of = {%s}," % ", ".join(c_string(p) for p in r["union_of"]))
    if r.get("parts"):
        lines.append(field + ".parts = {%s}," % ", ".join(c_string(p) for p in r["parts"]))
    if r["kind"] == "VL_INDEX_DATE" or r["name"] in SORTABLE and r["kind"] != "VL_INDEX_COMPOSITE":
        lines.append(field + ".sortable = 1,")
    if r["kind"] == "VL_INDEX_TOKEN":
        lines.append(field + ".text_name = %s," % c_string(r["name"] + ":text"))
        if r.get("identifier"):
            lines.append(field + ".of_type_name = %s," % c_string(r["name"] + ":of-type"))
    lines.append(field + ".description = " + c_wrapped(r["description"], 23) + ",")
    lines.append(field + ".url = %s," % c_string(r["url"]))
    lines.append(field + ".expression = " + c_wrapped(r["expression"], 22) + ",")
    lines.append("    },")
    return lines


def array_name(t):
    return "vl_fhir_params_" + t.lower()


def render(bundle, tables, common, left_out, deviations):
    o = []
    o.append("/*")
    o.append(" * vitalog — fhir/search_params.c: the search parameters of the served types.")
    o.append(" *")
    o.append(" * GENERATED by %s from the FHIR R4 package" % SCRIPT)
    o.append(" * %s: %s (Bundle %s," % (PACKAGE, BUNDLE.split("/")[-1], bundle.get("id")))
    o.append(" * lastUpdated %s) and the StructureDefinitions its" %
             bundle.get("meta", {}).get("lastUpdated"))
    o.append(" * expressions walk. DO NOT EDIT: change the generator and run it")
    o.append(" * again, by hand (the build never runs it and needs no network):")
    o.append(" *")
    o.append(" *     bash tests/setup.sh    # npm pack into tests/.cache, SHA-256 checked")
    o.append(" *     python3 %s tests/.cache/hl7.fhir.r4.examples-4.0.1.tgz" % SCRIPT)
    o.append(" *")
    o.append(" * The ctest fhir_search_params_generated fails when this file differs from")
    o.append(" * what the generator writes.")
    o.append(" *")
    o.append(" * Per parameter: name, kind, R4 canonical URL, R4 FHIRPath expression (the")
    o.append(" * part for the type), R4 description, and the JSON element paths index.c")
    o.append(" * walks, derived from the expression. The tables are sorted by name and")
    o.append(" * terminated by {NULL}; src/fhir/types.c points vl_fhir_types[] at them.")
    o.append(" *")
    o.append(" * Offered with part of the expression not indexed:")
    for t, name, path, why in deviations:
        o.extend(comment_lines("%s %s: %s (%s)" % (t, name, path, why)))
    o.append(" *")
    o.append(" * R4 parameters of the served types that are not offered:")
    for t, name, url, why in left_out:
        o.extend(comment_lines("%s %s: %s" % (t, name, why)))
    o.append(" */")
    o.append('#include "vitalog/fhir.h"')
    o.append("")
    o.append("/* Declared again where they are used: fhir/types.c (the per-type tables) and")
    o.append(" * fhir/capability.c (vl_fhir_params_common). */")
    for t in SERVED:
        o.append("extern const vl_search_param_t %s[];" % array_name(t))
    o.append("extern const vl_search_param_t vl_fhir_params_common[];")
    for t in SERVED:
        o.append("")
        o.append("const vl_search_param_t %s[] = {" % array_name(t))
        for r in tables[t]:
            o.extend(row_c(r))
        o.append("    {.name = NULL},")
        o.append("};")
    o.append("")
    o.append("/* Common to all types and handled by the search parser itself (fhir/search.c),")
    o.append(" * not indexed: no paths. */")
    o.append("const vl_search_param_t vl_fhir_params_common[] = {")
    for r in common:
        o.extend(row_c(r))
    o.append("    {.name = NULL},")
    o.append("};")
    return "\n".join(o) + "\n"


def render_reference(bundle):
    """The R4 SearchParameters whose base is a served type or Resource, as
    the unit test tests/unit/fhir/test_types.c reads them: url, code, type
    and base, straight from the Bundle (no translation), sorted by url."""
    rows = []
    for e in bundle["entry"]:
        sp = e.get("resource", {})
        if sp.get("resourceType") != "SearchParameter":
            continue
        base = sp.get("base", [])
        if not any(b in base for b in SERVED + ["Resource"]):
            continue
        rows.append({"url": sp["url"], "code": sp["code"], "type": sp["type"], "base": base})
    rows.sort(key=lambda r: r["url"])
    lines = ["[\n"]
    for i, r in enumerate(rows):
        lines.append("  " + json.dumps(r, ensure_ascii=True, separators=(", ", ": ")) +
                     ("," if i + 1 < len(rows) else "") + "\n")
    lines.append("]\n")
    return "".join(lines)


def check(path, text):
    """0 if the file at `path` holds exactly `text`; else prints a diff."""
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except OSError as e:
        print("%s: %s" % (path, e), file=sys.stderr)
        return 1
    if old != text:
        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(True), text.splitlines(True), path, "generated"))
        print("%s differs from what %s generates from %s; run it again" %
              (path, SCRIPT, PACKAGE), file=sys.stderr)
        return 1
    print("%s is up to date" % path)
    return 0


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    print("wrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", help="the %s tarball or its unpacked directory" % PACKAGE)
    ap.add_argument("-o", "--output", default=OUT_DEFAULT,
                    help="default: src/fhir/search_params.c")
    ap.add_argument("--reference", default=REFERENCE_DEFAULT,
                    help="the R4 definitions the unit test checks the tables against; "
                    "default: tests/unit/fhir/r4_search_parameters.json")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if OUTPUT or REFERENCE differs from the "
                    "generated text")
    args = ap.parse_args()

    pkg = Package(args.package)
    bundle, tables, common, left_out, deviations = build(pkg)
    text = render(bundle, tables, common, left_out, deviations)
    reference = render_reference(bundle)

    for t in SERVED:
        print("%-13s %2d parameters" % (t, len(tables[t])))
    print("offered with part of the expression not indexed:")
    for t, name, path, why in deviations:
        print("  %s %s: %s (%s)" % (t, name, path, why))
    print("left out:")
    for t, name, url, why in left_out:
        print("  %s %s (%s): %s" % (t, name, url, why))

    if args.check:
        bad = check(args.output, text)
        bad |= check(args.reference, reference)
        return bad
    write(args.output, text)
    write(args.reference, reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
