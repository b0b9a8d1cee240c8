"""Search paging against the real binary (R4 search.html#paging and
#count, docs/api.md "The searchset Bundle"): the self, first, next and
previous links, the opaque `_cursor` of every link after the first page,
`_offset`, and `total`.

A search runs on a snapshot taken at its first page. The snapshot tests
page through a search while they create, update and delete matching
resources between the pages: every resource that matched at the first page
must come exactly once, as it was then (the version it had at the first
page, also when it was updated or deleted since), in the order of the first
page's search, and nothing created later may appear. They run for the
default order, `_sort=-date` (Patient: `-birthdate`) and
`_sort=_lastUpdated`, each on the series path (Observation?patient=X&code=Y),
a token search (Observation?code=Y), a string search (Patient?name=...) and
an Observation search without parameters.

Every test states in its assertion message what the server should have
done; a failing assertion is a deviation of the server, not of the test.
"""

import json
import math
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from requests.structures import CaseInsensitiveDict

import harness

EXAMPLE = "http://example.org/vitalog-paging"


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-paging-"))
    with harness.serving(settings.binary, root) as server:
        server.root, server.binary = root, settings.binary
        yield server
    shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------
# Requests
# ----------------------------------------------------------------------


def call(server, method, target, body=None, token=None):
    """One request (as admin unless a token is given); target is a path or
    a whole URL (a link)."""
    url = target if target.startswith("http://") else server.base + target
    headers = CaseInsensitiveDict({"Accept": "application/fhir+json",
                                   "Authorization": f"Bearer {token or server.admin_token}"})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/fhir+json"
    r = harness.http_exchange(method, url, headers, data)
    assert not r.error, f"{method} {url}: {r.error}"
    return r


def page(server, target, token=None):
    """GET a searchset page: 200, a Bundle of type searchset."""
    r = call(server, "GET", target, token=token)
    assert r.status == 200, f"GET {target}: expected 200, got {r.status}: {r.text[:600]}"
    b = json.loads(r.body)
    assert b.get("resourceType") == "Bundle" and b.get("type") == "searchset", r.text[:300]
    return b


def links(bundle):
    """relation -> url; each relation at most once."""
    rels = [link["relation"] for link in bundle.get("link", [])]
    assert len(rels) == len(set(rels)), f"a link relation given twice: {rels}"
    return {link["relation"]: link["url"] for link in bundle.get("link", [])}


def matches(bundle):
    """(id, versionId) of the entries with search.mode match, in order."""
    out = []
    for e in bundle.get("entry", []):
        assert e.get("search", {}).get("mode") == "match", e.get("search")
        out.append((e["resource"]["id"], e["resource"]["meta"]["versionId"]))
    return out


def bad_request(server, target, why):
    """The request must be refused with 400 and an OperationOutcome."""
    r = call(server, "GET", target)
    assert r.status == 400, f"{why}: GET {target} should be 400, got {r.status}: {r.text[:400]}"
    oo = json.loads(r.body)
    assert oo.get("resourceType") == "OperationOutcome", r.text[:400]
    assert any(i.get("severity") in ("error", "fatal") for i in oo.get("issue", [])), r.text[:400]
    return oo


def cursor_of(url):
    values = [v for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True) if k == "_cursor"]
    assert len(values) == 1, f"{url} should carry exactly one _cursor"
    return values[0]


def put_all(server, resources):
    """Writes the resources (client ids) in one transaction."""
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                        for r in resources]}
    r = call(server, "POST", "/fhir", bundle)
    assert r.status == 200, r.text[:600]


def put(server, resource):
    r = call(server, "PUT", f"/fhir/{resource['resourceType']}/{resource['id']}", resource)
    assert r.status in (200, 201), r.text[:600]
    return json.loads(r.body)


def delete(server, rtype, rid):
    r = call(server, "DELETE", f"/fhir/{rtype}/{rid}")
    assert r.status in (200, 204), r.text[:400]


def read(server, rtype, rid):
    r = call(server, "GET", f"/fhir/{rtype}/{rid}")
    assert r.status == 200, r.text[:400]
    return json.loads(r.body)


def observation(oid, patient, system, code, when, value=70):
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org",
                              "code": "/min"}}


def patient(pid, family, birth):
    return {"resourceType": "Patient", "id": pid, "birthDate": birth,
            "name": [{"family": family, "given": ["Ann"]}]}


def walk_next(server, first, token=None):
    """The pages from `first` on, following next links."""
    pages = [first]
    while "next" in links(pages[-1]):
        assert len(pages) < 200, "next links do not end"
        pages.append(page(server, links(pages[-1])["next"], token))
    return pages


def walk_previous(server, last, limit, token=None):
    """The pages from `last` back, following previous links."""
    pages = [last]
    while "previous" in links(pages[-1]):
        assert len(pages) <= limit, "more previous pages than pages"
        pages.append(page(server, links(pages[-1])["previous"], token))
    return pages


def describe(got, want):
    """What differs between two sequences of (id, version)."""
    gid, wid = [g[0] for g in got], [w[0] for w in want]
    dups = sorted({i for i in gid if gid.count(i) > 1})
    skipped = [i for i in wid if i not in gid]
    extra = [i for i in gid if i not in wid]
    versions = [(g, w) for g in got for w in want if g[0] == w[0] and g[1] != w[1]]
    return (f"duplicates {dups}, skipped {skipped}, not in the snapshot {extra}, "
            f"other versions than at the first page (got, then) {versions}; "
            f"order got {gid}, order at the first page {wid}")


# ----------------------------------------------------------------------
# Links, totals, _offset
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def thirteen(srv):
    """13 Observations of one code (one patient; one a day), plus noise:
    returns (query, ids in time order)."""
    uid = uuid.uuid4().hex[:8]
    system = f"{EXAMPLE}/{uid}"
    pid = f"pl{uid}"
    res = [patient(pid, f"Links{uid}", "1970-01-01")]
    ids = [f"pl{uid}-{i:02d}" for i in range(13)]
    res += [observation(oid, pid, system, "c", f"2024-03-{i + 1:02d}T08:00:00Z") for i, oid in enumerate(ids)]
    res += [observation(f"pl{uid}-x{i}", pid, system, "other", f"2024-03-{i + 1:02d}T09:00:00Z") for i in range(3)]
    put_all(srv, res)
    return f"/fhir/Observation?code={quote(system, safe='')}%7Cc", ids


def test_links_and_totals_on_every_page(srv, thirteen):
    query, ids = thirteen
    first = page(srv, f"{query}&_count=5")
    pages = walk_next(srv, first)
    assert [len(p.get("entry", [])) for p in pages] == [5, 5, 3], \
        "13 matches at _count=5 should be pages of 5, 5 and 3"
    seen = [m[0] for p in pages for m in matches(p)]
    assert sorted(seen) == sorted(ids) and len(set(seen)) == 13, \
        f"following next links should visit every match exactly once: {seen}"
    for n, p in enumerate(pages):
        ls = links(p)
        assert "self" in ls and "first" in ls, f"page {n + 1}: every page has self and first: {ls}"
        assert ("next" in ls) == (n < 2), f"page {n + 1}: next exactly when more matches remain: {ls}"
        assert ("previous" in ls) == (n > 0), f"page {n + 1}: previous exactly when not on the first page: {ls}"
        assert p.get("total") == 13, f"page {n + 1}: total should be that of the first page (13): {p.get('total')}"
        for rel in ("next", "previous"):
            if rel in ls:
                assert cursor_of(ls[rel]), f"page {n + 1}: the {rel} link carries a _cursor"
        if n > 0:
            assert cursor_of(ls["self"]), f"page {n + 1}: self of a later page carries its _cursor: {ls['self']}"
            # self gives this page again
            assert matches(page(srv, ls["self"])) == matches(p), f"page {n + 1}: self does not give the page again"
    # no match: self and first, nothing else
    empty = page(srv, f"{query.replace('%7Cc', '%7Cnothing')}&_count=5")
    assert sorted(links(empty)) == ["first", "self"] and empty.get("total") == 0, \
        f"a search without matches: self and first only, total 0: {links(empty)}"
    # a page count that divides the matches: no empty page at the end
    pages4 = walk_next(srv, page(srv, f"{query}&_count=13"))
    assert len(pages4) == 1 and "next" not in links(pages4[0]), \
        "13 matches at _count=13: one page, no next link (no empty page after it)"


def test_previous_links_go_back_over_the_same_pages(srv, thirteen):
    query, _ = thirteen
    pages = walk_next(srv, page(srv, f"{query}&_count=4"))
    assert len(pages) == 4
    back = walk_previous(srv, pages[-1], len(pages))
    assert [matches(p) for p in back] == [matches(p) for p in reversed(pages)], \
        "previous links from the last page should visit the same pages in reverse"
    assert "previous" not in links(back[-1]) and "next" in links(back[-1]), \
        "the first page, reached by previous links, has next but no previous"
    for n, p in enumerate(pages):
        again = page(srv, links(p)["first"])
        assert matches(again) == matches(pages[0]), f"first of page {n + 1} should give the first page again"
        assert "previous" not in links(again)


def test_offset_pages(srv, thirteen):
    query, ids = thirteen
    ten = matches(page(srv, f"{query}&_count=10"))
    five = page(srv, f"{query}&_offset=5&_count=5")
    assert matches(five) == ten[5:10], "_offset=5&_count=5 should be matches 6-10 of the _count=10 order"
    ls = links(five)
    assert "previous" in ls and "next" in ls, f"an _offset page has previous and next: {ls}"
    assert matches(page(srv, ls["previous"])) == ten[:5], "previous of _offset=5 should be matches 1-5"
    sorted10 = matches(page(srv, f"{query}&_sort=-date&_count=10"))
    assert matches(page(srv, f"{query}&_sort=-date&_offset=5&_count=5")) == sorted10[5:10], \
        "_offset with _sort=-date: matches 6-10 of the same order"
    assert [m[0] for m in sorted10] == ids[::-1][:10], "_sort=-date: the latest first (one a day)"
    assert page(srv, f"{query}&_offset=10000").get("entry", []) == [], "_offset=10000 is accepted (and empty here)"
    bad_request(srv, f"{query}&_offset=10001", "_offset beyond 10000")


def test_a_changed_cursor_is_refused(srv, thirteen):
    query, _ = thirteen
    nxt = links(page(srv, f"{query}&_count=4"))["next"]
    cursor = cursor_of(nxt)
    assert len(cursor) > 8, "a cursor of some length"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # every position but the last (whose low bits may be padding)
    for i in range(len(cursor) - 1):
        changed = cursor[:i] + ("B" if cursor[i] == "A" else "A") + cursor[i + 1:]
        bad_request(srv, nxt.replace(f"_cursor={cursor}", f"_cursor={changed}"),
                    f"a cursor with character {i} changed")
    assert all(c in alphabet for c in cursor), f"the cursor is URL-safe as it is: {cursor}"
    for changed in (cursor[:-1], cursor + "A", "x", cursor[:10] + "!" + cursor[11:]):
        bad_request(srv, nxt.replace(f"_cursor={cursor}", f"_cursor={changed}"), f"cursor {changed!r}")


def test_a_cursor_belongs_to_its_search(srv, thirteen):
    query, _ = thirteen
    nxt = links(page(srv, f"{query}&_count=4"))["next"]
    cursor = cursor_of(nxt)
    assert "_count=4" in nxt
    path = urlsplit(nxt).path
    bad_request(srv, nxt.replace("_count=4", "_count=5"), "a cursor with another _count")
    bad_request(srv, nxt + "&status=final", "a cursor with one more parameter")
    bad_request(srv, nxt.replace("%7Cc", "%7Cother"), "a cursor with another code")
    bad_request(srv, f"{path}?_count=4&_cursor={cursor}", "a cursor without the search's parameters")
    other = cursor_of(links(page(srv, "/fhir/Observation?_count=2"))["next"])
    bad_request(srv, f"/fhir/Patient?_count=2&_cursor={other}", "an Observation cursor on a Patient search")
    bad_request(srv, f"{query}&_sort=-date&_count=4&_cursor={cursor}", "a cursor with another _sort")
    bad_request(srv, nxt + "&_offset=4", "_offset together with _cursor")
    bad_request(srv, nxt + "&_offset=0", "_offset=0 together with _cursor")
    bad_request(srv, nxt + f"&_cursor={cursor}", "_cursor given twice")


# ----------------------------------------------------------------------
# Snapshots
# ----------------------------------------------------------------------

# Dates that move a resource to the front or to the back of an order.
EARLY, LATE = "1901-01-01", "2099-12-31"


class Scenario:
    """One search kind: its data, its query, and how to change a match."""

    def __init__(self, kind, order, uid):
        self.kind, self.order, self.uid = kind, order, uid
        self.system = f"{EXAMPLE}/{uid}"
        self.family = f"Snap{uid}"
        self.pid = f"sp{uid}"
        self.n = 0
        self.rtype = "Patient" if kind == "string" else "Observation"

    def new_id(self):
        self.n += 1
        return f"s{self.uid}-{self.n:03d}"

    def matching(self, i):
        """A new resource that matches; distinct dates by i."""
        if self.kind == "string":
            return patient(self.new_id(), f"{self.family}{'abcdefghijklmnopqrstuvwxyz'[i % 26]}",
                           f"{1950 + i:04d}-02-03")
        pid = self.pid if self.kind == "series" else f"{self.pid}{i % 3}"
        return observation(self.new_id(), pid, self.system, "c", f"2024-01-{1 + i % 28:02d}T{i // 28:02d}:30:00Z",
                           value=60 + i)

    def setup(self, server):
        res = [patient(self.pid + s, f"Owner{self.uid}", "1980-01-01") for s in ("", "0", "1", "2")]
        res += [self.matching(i) for i in range(12)]
        if self.kind == "string":
            res += [patient(f"s{self.uid}-n{i}", f"Other{self.uid}", "1960-01-01") for i in range(2)]
        else:
            res += [observation(f"s{self.uid}-n{i}", self.pid, self.system, "noise", "2024-01-05T00:00:00Z")
                    for i in range(2)]
        put_all(server, res)

    def query(self):
        if self.kind == "series":
            q = f"/fhir/Observation?patient=Patient/{self.pid}&code={quote(self.system, safe='')}%7Cc"
        elif self.kind == "token":
            q = f"/fhir/Observation?code={quote(self.system, safe='')}%7Cc"
        elif self.kind == "string":
            q = f"/fhir/Patient?name={self.family}"
        else:
            q = "/fhir/Observation?"
        sort = {"default": None, "-date": "-birthdate" if self.kind == "string" else "-date",
                "_lastUpdated": "_lastUpdated"}[self.order]
        if sort:
            q += ("" if q.endswith("?") else "&") + f"_sort={sort}"
        return q

    def move(self, body, where):
        """The body changed so that it still matches but sorts at the
        front or at the back (for the default order: the date and the
        name move, whatever the order is made of)."""
        to_front = where == "front"
        if self.order == "-date":
            to_front = not to_front
        if self.rtype == "Patient":
            body["birthDate"] = EARLY if to_front else LATE
            body["name"][0]["family"] = self.family + ("a" if to_front else "zz")
        else:
            body["effectiveDateTime"] = (EARLY if to_front else LATE) + "T12:00:00Z"
            body["valueQuantity"]["value"] = 1 if to_front else 999
        return body

    def unmatch(self, body):
        """The body changed so that it no longer matches, or None."""
        if self.kind == "all":
            return None
        if self.rtype == "Patient":
            body["name"][0]["family"] = f"Gone{self.uid}"
        else:
            body["code"]["coding"][0]["code"] = "gone"
        return body


def strip_meta(body):
    body = dict(body)
    body.pop("meta", None)
    return body


@pytest.mark.parametrize("order", ["default", "-date", "_lastUpdated"])
@pytest.mark.parametrize("kind", ["series", "token", "string", "all"])
def test_paging_reads_the_snapshot_of_the_first_page(srv, kind, order):
    sc = Scenario(kind, order, uuid.uuid4().hex[:8])
    sc.setup(srv)
    query = sc.query()
    baseline_page = page(srv, query + ("" if query.endswith("?") else "&") + "_count=1000")
    assert "next" not in links(baseline_page)
    baseline = matches(baseline_page)
    assert len(baseline) >= 12, f"{query}: the data set should match at least 12: {baseline}"
    count = 4 if kind != "all" else max(4, math.ceil(len(baseline) / 3))
    sep = "" if query.endswith("?") else "&"
    pages = [page(srv, f"{query}{sep}_count={count}")]
    assert matches(pages[0]) == baseline[:count], \
        f"{query}: the first page should start the order of the same search with _count=1000"
    total = pages[0].get("total")
    assert total == len(baseline), f"{query}: total on the first page: {total}, expected {len(baseline)}"
    touched = set()

    def pick(ids):
        """The first id not yet changed."""
        for i in ids:
            if i not in touched:
                touched.add(i)
                return i
        pytest.fail(f"no id left to change in {ids}")

    def rewrite(rid, change):
        body = change(strip_meta(read(srv, sc.rtype, rid)))
        if body is not None:
            put(srv, body)

    for boundary in (1, 2):
        so_far = [m for p in pages for m in matches(p)]
        assert so_far == baseline[:len(so_far)], (
            f"{query} at _count={count}, changed while paging: pages 1-{boundary} should hold the first "
            f"{len(so_far)} matches of the first page's snapshot: {describe(so_far, baseline[:len(so_far)])}")
        seen = [m[0] for m in so_far]
        unseen = [m[0] for m in baseline if m[0] not in seen]
        assert len(unseen) >= 4, f"{query}: the test needs 4 unseen matches after page {boundary}"
        if boundary == 1:
            for i in range(2):  # new matches: never in this search
                put(srv, sc.matching(40 + i))
            rewrite(pick(seen), lambda b: sc.move(b, "back"))  # seen, moved to come again
            rewrite(pick(reversed(unseen)), lambda b: sc.move(b, "front"))  # unseen, moved before the position
            rewrite(pick(unseen), sc.unmatch)  # unseen, no longer matching
            delete(srv, sc.rtype, pick(unseen))  # unseen, deleted
            delete(srv, sc.rtype, pick(seen))  # seen, deleted
        else:
            rewrite(pick(reversed(seen)), lambda b: sc.move(b, "back"))
            twice = pick(unseen)
            rewrite(twice, lambda b: sc.move(b, "front"))
            rewrite(twice, lambda b: sc.move(b, "back"))
            put(srv, sc.matching(50))
            delete(srv, sc.rtype, pick(reversed(unseen)))
        nxt = links(pages[-1]).get("next")
        assert nxt, f"{query}: page {boundary} of {len(baseline)} matches at _count={count} should have next"
        pages.append(page(srv, nxt))
    pages = pages[:-1] + walk_next(srv, pages[-1])
    got = [m for p in pages for m in matches(p)]
    assert got == baseline, (
        f"{query} at _count={count}, changed while paging: the pages should hold exactly the matches of "
        f"the first page's snapshot, each once, in their versions and order of then: {describe(got, baseline)}")
    for n, p in enumerate(pages):
        assert p.get("total") == total, f"{query}: page {n + 1} total {p.get('total')}, first page said {total}"
        assert "first" in links(p) and "self" in links(p)
    # back over the same pages, and the first page again, in the snapshot
    back = walk_previous(srv, pages[-1], len(pages))
    assert [matches(p) for p in back] == [matches(p) for p in reversed(pages)], \
        f"{query}: previous links should give the snapshot's pages in reverse, after the changes"
    assert matches(page(srv, links(pages[-1])["first"])) == baseline[:count], \
        f"{query}: first (from the last page) should give the snapshot's first page, after the changes"
    # a new search sees the changes
    fresh = matches(page(srv, query + sep + "_count=1000"))
    assert fresh != baseline, f"{query}: a new search should see the changes"


# ----------------------------------------------------------------------
# Pages cut by bytes, and who follows a link
# ----------------------------------------------------------------------


def test_pages_cut_by_bytes(settings):
    """--max-page-bytes cuts pages short of _count (docs/api.md): the
    links must still behave as on pages of _count."""
    root = Path(tempfile.mkdtemp(prefix="vitalog-paging-bytes-"))
    try:
        with harness.serving(settings.binary, root, ("--max-page-bytes", "1000")) as server:
            uid = uuid.uuid4().hex[:8]
            system = f"{EXAMPLE}/{uid}"
            put_all(server, [observation(f"pb{uid}-{i}", f"pb{uid}", system, "c", f"2024-04-{i + 1:02d}T08:00:00Z")
                             for i in range(9)])
            query = f"/fhir/Observation?code={quote(system, safe='')}%7Cc&_count=5"
            pages = walk_next(server, page(server, query))
            full = [p for p in pages if p.get("entry")]
            got = [m[0] for p in full for m in matches(p)]
            assert sorted(got) == sorted(f"pb{uid}-{i}" for i in range(9)) and len(got) == 9, \
                f"pages cut by bytes: next links visit every match once: {got}"
            assert len(full) > 2, "the precondition: 1000 bytes hold fewer than 5 of these Observations"
            for n, p in enumerate(full[1:], 2):  # an empty last page: test_no_empty_page_after_the_last_match
                assert "previous" in links(p), \
                    f"page {n} of {len(pages)} (cut by bytes) is not the first page: it has a previous link"
            back = walk_previous(server, full[-1], len(pages))
            assert [matches(p) for p in back] == [matches(p) for p in reversed(full)], (
                "pages cut by bytes: previous links from the last page should visit the same pages in reverse, "
                f"back to the first: forward {[[m[0] for m in matches(p)] for p in full]}, "
                f"back {[[m[0] for m in matches(p)] for p in back]} (links {[sorted(links(p)) for p in back]})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_no_empty_page_after_the_last_match(settings):
    """"next when more remain": the page that holds the last match has no
    next link, also when the page was cut by bytes."""
    root = Path(tempfile.mkdtemp(prefix="vitalog-paging-bytes-"))
    try:
        with harness.serving(settings.binary, root, ("--max-page-bytes", "1000")) as server:
            uid = uuid.uuid4().hex[:8]
            system = f"{EXAMPLE}/{uid}"
            put_all(server, [observation(f"pe{uid}-{i}", f"pe{uid}", system, "c", f"2024-04-{i + 1:02d}T08:00:00Z")
                             for i in range(9)])
            pages = walk_next(server, page(server, f"/fhir/Observation?code={quote(system, safe='')}%7Cc&_count=5"))
            sizes = [len(p.get("entry", [])) for p in pages]
            assert 0 not in sizes, (
                f"pages of sizes {sizes}: the last match's page should have no next link (no more remain), "
                "not one to an empty page")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--data", str(server.root), "--role", role,
                        "--subject", subject], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def consent(cid, pat, actor):
    """An active Consent (the shape of test_consent.py) that permits actor
    to access the patient's data."""
    return {"resourceType": "Consent", "id": cid, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pat}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": {"type": "permit",
                          "actor": [{"role": {"coding": [{
                              "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                              "code": "PRCP"}]}, "reference": {"reference": actor}}],
                          "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                                  "code": "access"}]}]}}


def test_links_are_read_in_the_callers_scope_now(srv):
    """The snapshot fixes the data, not the access: a link followed by
    another caller shows that caller's share, and a revoked Consent takes
    effect on the very next page (docs/consent.md)."""
    uid = uuid.uuid4().hex[:8]
    system = f"{EXAMPLE}/{uid}"
    a, b = f"ca{uid}", f"cb{uid}"
    res = [patient(a, f"Cons{uid}", "1970-01-01"), patient(b, f"Cons{uid}", "1970-01-01")]
    res += [observation(f"c{uid}-{p}{i}", p, system, "c", f"2024-06-{i + 1:02d}T08:00:00Z")
            for p in (a, b) for i in range(4)]
    put_all(srv, res)
    actor = f"Organization/co{uid}"
    assert call(srv, "PUT", f"/fhir/Consent/cc{uid}", consent(f"cc{uid}", a, actor)).status == 201
    clinic = new_token(srv, "clinic", actor)
    query = f"/fhir/Observation?code={quote(system, safe='')}%7Cc&_count=2"
    # the admin's links, followed by the clinic: A's readings only
    admin_pages = walk_next(srv, page(srv, query))
    assert sum(len(matches(p)) for p in admin_pages) == 8
    # (a cursor is bound to its caller: another caller's link is refused, so
    # neither its rows nor the total counted in the admin's scope show)
    for p in admin_pages[1:]:
        r = call(srv, "GET", links(p)["self"], token=clinic)
        assert r.status == 400, f"the clinic follows the admin's cursor: {r.status}"
        assert b"Cons" not in r.body and json.loads(r.body)["resourceType"] == "OperationOutcome"
    # the clinic's own paging, and the revoke between two pages
    first = page(srv, query, clinic)
    assert all(m[0].startswith(f"c{uid}-{a}") for m in matches(first)) and first.get("total") == 4
    nxt = links(first)["next"]
    assert call(srv, "DELETE", f"/fhir/Consent/cc{uid}").status == 204
    r = call(srv, "GET", nxt, token=clinic)
    if r.status == 200:
        assert matches(json.loads(r.body)) == [], \
            f"the Consent was revoked: the next page must disclose nothing: {matches(json.loads(r.body))}"
    else:
        assert r.status in (400, 403), f"after a revoke the next page is refused or empty: {r.status}"
    r = call(srv, "GET", links(first)["first"], token=clinic)
    assert r.status != 200 or matches(json.loads(r.body)) == [], "after a revoke the first link discloses nothing"
