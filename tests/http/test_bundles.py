"""Batch and transaction Bundles (POST /fhir) and conditional update and
delete, against a real `vitalog serve` (R4 http.html 3.1.0.11 batch/transaction,
3.1.0.4.3 conditional update, 3.1.0.7.1 conditional delete).

    python3 -m pytest tests/http/test_bundles.py          # or -k transaction

Most tests share one server (the `fhir` fixture); each tags what it writes
with identifiers of its own (`tag()`), so that tests do not see each other's
resources. A test that counts the whole store (`Type/_history` totals) or
changes a server option starts a fresh one (`fresh_server`). Every exchange
goes through harness.http_exchange and passes the implicit checks of the
case files (checks.implicit_problems): X-Request-Id, JSON bodies, errors as
OperationOutcomes. "Nothing written" is checked three ways: the searches of
the failed entries find nothing, the `_history` totals are unchanged, and the
ledger size (line 2 of GET /ledger/checkpoint) is unchanged.

Numbers keep their exact text (fhirjson): the HL7 examples are sent and
compared as written.
"""

import contextlib
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from requests.structures import CaseInsensitiveDict

import checks
import fhirjson
import harness
from checks import excerpt

TYPES = ("Patient", "Observation", "Device")
ID = r"[A-Za-z0-9\-.]{1,64}"
INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")
SYSTEM = "http://example.org/vitalog/test-bundles"  # identifier system of every tagged resource
LOINC = "http://loinc.org"
VITAL_SIGNS = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                           "code": "vital-signs"}]}

# ----------------------------------------------------------------------
# Servers and the client
# ----------------------------------------------------------------------


class Fhir:
    """A client of one server. Every response must pass the implicit checks."""

    def __init__(self, server: harness.Server):
        self.server = server
        self.base = server.base

    def send(self, method: str, path: str, body=None, headers: dict | None = None) -> checks.Response:
        """path: "/fhir/..." or an absolute URL; body: a JSON tree, bytes or None."""
        request_headers = CaseInsensitiveDict({"Accept": "application/fhir+json",
                                               "Authorization": f"Bearer {self.server.admin_token}"})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else fhirjson.dumps(body).encode("utf-8")
            request_headers["Content-Type"] = "application/fhir+json"
        for name, value in (headers or {}).items():
            request_headers[name] = value
        url = path if path.startswith("http://") else self.base + path
        response = harness.http_exchange(method, url, request_headers, data)
        assert not response.error, f"{method} {url}: transport error: {response.error}"
        problems = checks.implicit_problems(method, url.removeprefix(self.base), response)
        assert not problems, f"{method} {url}:\n" + "\n".join(problems)
        return response

    def expect(self, status: int, method: str, path: str, body=None, headers: dict | None = None):
        """send(), which must answer `status`; returns the parsed body (None when empty)."""
        response = self.send(method, path, body, headers)
        assert response.status == status, (
            f"{method} {path}: expected {status}, got {response.status}: {excerpt(response.body, 1500)}")
        return response.json if response.body else None

    def bundle(self, kind: str, entries: list, status: int = 200, prefer: str | None = None):
        """POST /fhir with a Bundle of type kind; returns the answer (a Bundle or an OperationOutcome)."""
        headers = {"Prefer": prefer} if prefer else None
        body = {"resourceType": "Bundle", "type": kind, "entry": entries}
        answer = self.expect(status, "POST", "/fhir", body, headers)
        if status == 200:
            assert answer["resourceType"] == "Bundle" and answer["type"] == f"{kind}-response", answer
            assert len(answer.get("entry", [])) == len(entries), f"{len(entries)} entries sent: {answer}"
        return answer

    def create(self, resource: dict) -> str:
        """A plain POST /fhir/Type; returns the new id."""
        return self.expect(201, "POST", f"/fhir/{resource['resourceType']}", resource)["id"]

    def search(self, query: str) -> dict:
        return self.expect(200, "GET", f"/fhir/{query}")

    def ids(self, query: str) -> set:
        """The ids a search finds (all of them on the first page)."""
        found = self.search(query)
        ids = {e["resource"]["id"] for e in found.get("entry", []) if e.get("search", {}).get("mode") == "match"}
        assert int(found["total"]) == len(ids), f"{query}: total {found['total']} but {len(ids)} on the page"
        return ids

    def total(self, query: str) -> int:
        return int(self.search(query)["total"])

    def version(self, rtype: str, rid: str) -> str:
        return self.expect(200, "GET", f"/fhir/{rtype}/{rid}")["meta"]["versionId"]

    def writes(self) -> list:
        """The `kind ref` of every ledger entry that anchors a write: the
        entries of the accounting of disclosures (kind access.disclose,
        written when these tests read as admin) are left out."""
        response = self.send("GET", "/ledger/checkpoint")
        if response.status == 404:
            return []
        assert response.status == 200, f"GET /ledger/checkpoint: {response.status} {response.text}"
        size, out = int(response.text.split("\n")[1]), []
        for start in range(0, size, 1000):
            response = self.send("GET", f"/ledger/entries?start={start}&end={min(size, start + 1000)}")
            assert response.status == 200, response.text
            for line in response.text.splitlines():
                entry = fhirjson.loads(line) if line else None
                if entry and entry["kind"] != "access.disclose":
                    out.append(f"{entry['kind']} {entry['ref']}")
        return out

    def ledger_size(self) -> int:
        """How many entries anchor writes (see writes())."""
        return len(self.writes())

    def ledger_refs(self, start: int, end: int) -> list:
        """The `kind ref` of the write entries [start, end) (see writes())."""
        return self.writes()[start:end]

    def state(self) -> tuple:
        """What must not change when nothing is written: ledger size and _history totals."""
        return self.ledger_size(), {t: self.total(f"{t}/_history") for t in TYPES}


@contextlib.contextmanager
def fresh_server(settings: harness.Settings, request, *extra: str):
    """A server on an empty data directory; yields its Fhir client."""
    data_dir = Path(tempfile.mkdtemp(prefix="vitalog-bundles-"))
    failed_before = request.session.testsfailed
    server = harness.Server(settings.binary, data_dir, extra)
    try:
        server.wait_for_port()
        yield Fhir(server)
    finally:
        problem = server.stop()
        failed = request.session.testsfailed > failed_before or problem
        if failed:
            print(server.log_tail())
        if settings.keep_data == "always" or (failed and settings.keep_data == "failed"):
            print(f"kept data dir {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    assert problem is None, problem


@pytest.fixture(scope="module")
def fhir(settings, request):
    with fresh_server(settings, request) as client:
        yield client


@pytest.fixture
def empty(settings, request):
    """A server of its own, for tests that count the whole store."""
    with fresh_server(settings, request) as client:
        yield client


# ----------------------------------------------------------------------
# Bundle entries and checks
# ----------------------------------------------------------------------


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def tag() -> str:
    """An identifier value no other test uses."""
    return uuid.uuid4().hex


def ident(value: str) -> list:
    return [{"system": SYSTEM, "value": value}]


def by_ident(rtype: str, value: str) -> str:
    return f"{rtype}?identifier={SYSTEM}|{value}"


def patient(value: str | None = None, **more) -> dict:
    resource = {"resourceType": "Patient"}
    if value:
        resource["identifier"] = ident(value)
    resource.update(more)
    return resource


def observation(value: str | None = None, subject: str | None = None, **more) -> dict:
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "test-bundles"}}
    if value:
        resource["identifier"] = ident(value)
    if subject:
        resource["subject"] = {"reference": subject}
    resource.update(more)
    return resource


def heart_rate(subject: str, value: str | None = None, unit: bool = True) -> dict:
    """A vital-signs heart rate; without its unit it breaks the heartrate profile (422)."""
    quantity = {"value": fhirjson.Number("72"), "unit": "beats/minute", "system": "http://unitsofmeasure.org",
                "code": "/min"}
    if not unit:
        del quantity["unit"]
    resource = {"resourceType": "Observation", "status": "final", "category": [VITAL_SIGNS],
                "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
                "subject": {"reference": subject}, "effectiveDateTime": "2024-05-01T10:00:00Z",
                "valueQuantity": quantity}
    if value:
        resource["identifier"] = ident(value)
    return resource


def post(resource: dict, full_url: str | None = None, if_none_exist: str | None = None) -> dict:
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    if if_none_exist:
        entry["request"]["ifNoneExist"] = if_none_exist
    return entry


def put(url: str, resource: dict, full_url: str | None = None, if_match: str | None = None) -> dict:
    entry = {"resource": resource, "request": {"method": "PUT", "url": url}}
    if full_url:
        entry["fullUrl"] = full_url
    if if_match:
        entry["request"]["ifMatch"] = if_match
    return entry


def delete(url: str, if_match: str | None = None) -> dict:
    entry = {"request": {"method": "DELETE", "url": url}}
    if if_match:
        entry["request"]["ifMatch"] = if_match
    return entry


def get(url: str) -> dict:
    return {"request": {"method": "GET", "url": url}}


def written(fhir: Fhir, entry: dict, status: str, rtype: str, version: int = 1, minimal: bool = False) -> str:
    """Checks the response entry of a create or update: status, location
    {base}/fhir/Type/id/_history/v, etag W/"v", lastModified an instant, and
    (unless minimal) the stored resource with that id and version. Returns the id."""
    response = entry["response"]
    assert response["status"] == status, entry
    pattern = rf"{re.escape(fhir.base)}/fhir/{rtype}/({ID})/_history/{version}"
    match = re.fullmatch(pattern, response.get("location", ""))
    assert match, f"location is not {{base}}/fhir/{rtype}/{{id}}/_history/{version}: {entry}"
    rid = match.group(1)
    assert response.get("etag") == f'W/"{version}"', entry
    assert INSTANT.fullmatch(response.get("lastModified", "")), entry
    if minimal:
        assert "resource" not in entry, entry
    else:
        resource = entry["resource"]
        assert (resource["resourceType"], resource["id"]) == (rtype, rid), entry
        assert resource["meta"]["versionId"] == str(version), entry
        assert resource["meta"]["lastUpdated"] == response["lastModified"], entry
    return rid


def failed_entry(entry: dict, status: int) -> dict:
    """A batch entry that failed: its status, and an error OperationOutcome. Returns the outcome."""
    response = entry["response"]
    assert response["status"].startswith(f"{status} "), entry
    outcome = response.get("outcome")
    assert outcome and outcome["resourceType"] == "OperationOutcome", entry
    assert outcome["issue"][0]["severity"] in ("error", "fatal") and outcome["issue"][0]["code"], entry
    assert "resource" not in entry and "location" not in response, entry
    return outcome


def names_entry(outcome: dict, index: int) -> None:
    """The answer of a failed transaction: its first issue names Bundle.entry[index]."""
    assert outcome["resourceType"] == "OperationOutcome", outcome
    issue = outcome["issue"][0]
    assert issue["severity"] in ("error", "fatal") and issue["code"], outcome
    assert issue.get("expression") == [f"Bundle.entry[{index}]"], outcome
    diagnostics = issue.get("diagnostics", "")
    assert re.search(rf"entry( |\[){index}\b", diagnostics), f"diagnostics do not name entry {index}: {outcome}"


def substituted(tree, mapping: dict):
    """tree with every string equal to a key of mapping replaced by its value."""
    if isinstance(tree, dict):
        return {k: substituted(v, mapping) for k, v in tree.items()}
    if isinstance(tree, list):
        return [substituted(v, mapping) for v in tree]
    if isinstance(tree, str) and not isinstance(tree, fhirjson.Number):
        return mapping.get(tree, tree)
    return tree


def same_resource(fhir: Fhir, location_or_path: str, expected: dict) -> dict:
    """GET it: 200 and equal to expected apart from id and meta. Returns it."""
    read = fhir.expect(200, "GET", location_or_path)
    difference = checks.resource_difference(expected, read)
    assert difference is None, f"GET {location_or_path}: {difference}"
    return read


# ----------------------------------------------------------------------
# 1. The HL7 R4 examples, with cross-references
# ----------------------------------------------------------------------


def load_examples(settings, prefix: str) -> list:
    """(file stem, resource without id and meta) of every hl7-r4-examples/{prefix}-*.json."""
    files = sorted((settings.test_data / "hl7-r4-examples").glob(f"{prefix}-*.json"))
    assert files, f"no {prefix} examples in {settings.test_data}/hl7-r4-examples"
    examples = []
    for file in files:
        resource = fhirjson.loads(file.read_bytes())
        examples.append((file.stem, resource))
    return examples


def stripped(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k not in ("id", "meta")}


@pytest.fixture(scope="module")
def examples(settings, request):
    """The Patient, Device and Observation examples, and which Observations the
    server accepts alone: each is POSTed alone (without id and meta) to a server
    of its own first. {"patients", "devices", "accepted", "rejected"}: lists of
    (stem, resource as in the file); rejected ones answered 422."""
    found = {"patients": load_examples(settings, "Patient"), "devices": load_examples(settings, "Device"),
             "observations": load_examples(settings, "Observation"), "accepted": [], "rejected": []}
    with fresh_server(settings, request) as alone:
        for kind in ("patients", "devices"):
            for stem, resource in found[kind]:
                alone.expect(201, "POST", f"/fhir/{resource['resourceType']}", stripped(resource))
        for stem, resource in found["observations"]:
            response = alone.send("POST", "/fhir/Observation", stripped(resource))
            assert response.status in (201, 422), f"{stem} alone: {response.status} {excerpt(response.body, 800)}"
            found["accepted" if response.status == 201 else "rejected"].append((stem, resource))
    print(f"Observation examples accepted alone: {len(found['accepted'])}, rejected (422): "
          f"{[stem for stem, _ in found['rejected']]}")
    return found


def cross_referenced(examples) -> tuple:
    """The transaction of every Patient and Device example and every accepted
    Observation example, POST with urn:uuid fullUrls, their references
    rewritten to those urns:
    - a reference "Type/id" to an example in the Bundle (Patient-pat1 <->
      Patient-pat2 links, the panels' hasMember, derivedFrom) -> its urn;
    - every Observation's subject (but a contained "#..." one) -> a Patient
      example's urn (that of its original id when there is one, else the
      next Patient round robin); a device -> a Device example's urn;
    - every Device gets a patient -> a Patient example's urn.
    Returns (entries, urn of each entry, urn -> Patient urn of each Observation's subject)."""
    chosen = examples["patients"] + examples["devices"] + examples["accepted"]
    urns = [urn() for _ in chosen]
    by_ref = {f"{r['resourceType']}/{r['id']}": u for (_, r), u in zip(chosen, urns)}
    patient_urns = urns[: len(examples["patients"])]
    device_urns = urns[len(examples["patients"]): len(examples["patients"]) + len(examples["devices"])]

    def rewrite(tree):
        if isinstance(tree, dict):
            out = {k: rewrite(v) for k, v in tree.items()}
            if isinstance(out.get("reference"), str) and out["reference"] in by_ref:
                out["reference"] = by_ref[out["reference"]]
            return out
        if isinstance(tree, list):
            return [rewrite(v) for v in tree]
        return tree

    entries, subject_of = [], {}
    for n, ((_, original), own) in enumerate(zip(chosen, urns)):
        resource = rewrite(stripped(original))
        rtype = resource["resourceType"]
        if rtype == "Device":
            resource["patient"] = {"reference": patient_urns[n % len(patient_urns)]}
        if rtype == "Observation":
            subject = resource.get("subject", {})
            ref = subject.get("reference", "")
            if not ref.startswith("#"):
                if not ref.startswith("urn:uuid:") or ref not in patient_urns:
                    ref = patient_urns[n % len(patient_urns)]
                resource["subject"] = {**subject, "reference": ref}
                subject_of[own] = ref
            if "device" in resource:
                resource["device"] = {**resource["device"], "reference": device_urns[n % len(device_urns)]}
        entries.append(post(resource, own))
    return entries, urns, subject_of


def test_the_examples_needed_are_accepted_alone(examples):
    """Every Patient and Device example is accepted alone (the fixture checks
    201), and every Observation example answers 201 or 422 (profile) alone."""
    assert examples["accepted"], "no Observation example is accepted alone"
    assert len(examples["accepted"]) + len(examples["rejected"]) == len(examples["observations"])


def test_transaction_of_the_hl7_examples_resolves_every_cross_reference(examples, empty):
    """One transaction of every Patient, Device and accepted Observation example
    with urn:uuid cross-references: every entry 201 in request order; each read
    back (GET Location) equals what was sent with each urn replaced by "Type/id"
    (nothing else changed); subject and Device.patient searches find exactly the
    resources pointed at each Patient; exactly one ledger entry per create."""
    fhir = empty
    entries, urns, subject_of = cross_referenced(examples)
    answer = fhir.bundle("transaction", entries)
    ids, locations = {}, []
    for sent, got, own in zip(entries, answer["entry"], urns):
        rtype = sent["resource"]["resourceType"]
        rid = written(fhir, got, "201 Created", rtype)
        assert got.get("fullUrl") in (None, f"{fhir.base}/fhir/{rtype}/{rid}"), got
        ids[own] = f"{rtype}/{rid}"
        locations.append(got["response"]["location"])
    assert len(set(ids.values())) == len(entries), "two entries were given the same id"

    for sent, location, got in zip(entries, locations, answer["entry"]):
        read = same_resource(fhir, location, substituted(sent["resource"], ids))
        assert checks.resource_difference(read, got["resource"]) is None, "the response entry differs from the read"
        text = fhirjson.dumps(read)
        assert not [u for u in urns if u in text], f"{location} still holds a urn of the Bundle: {excerpt(text, 600)}"

    patient_urns = urns[: len(examples["patients"])]
    for p in patient_urns:
        pid = ids[p]
        want = {ids[o].split("/")[1] for o, s in subject_of.items() if s == p}
        assert fhir.ids(f"Observation?subject={pid}") == want, f"Observation?subject={pid}"
        devices = {ids[u].split("/")[1] for e, u in zip(entries, urns)
                   if e["resource"]["resourceType"] == "Device" and e["resource"]["patient"]["reference"] == p}
        assert fhir.ids(f"Device?patient={pid}") == devices, f"Device?patient={pid}"
    # the store holds exactly these creates, one ledger entry each
    counts = {t: sum(e["resource"]["resourceType"] == t for e in entries) for t in TYPES}
    assert fhir.state() == (len(entries), counts)
    assert sorted(fhir.ledger_refs(0, len(entries))) == sorted(
        f"create {ids[u]}/_history/1" for u in urns)


def test_batch_of_the_hl7_examples_stores_each_as_sent(examples, empty):
    """The same examples (original references, no fullUrl) as a batch: each 201
    and stored as sent; then one batch with urn:uuid references, which a batch
    does not resolve: they are stored as sent."""
    fhir = empty
    chosen = examples["patients"] + examples["devices"] + examples["accepted"]
    entries = [post(stripped(resource)) for _, resource in chosen]
    answer = fhir.bundle("batch", entries)
    for sent, got in zip(entries, answer["entry"]):
        written(fhir, got, "201 Created", sent["resource"]["resourceType"])
        same_resource(fhir, got["response"]["location"], sent["resource"])
    assert fhir.ledger_size() == len(entries)

    p = urn()
    urn_batch = [post(patient(tag()), p), post(observation(tag(), subject=p))]
    answer = fhir.bundle("batch", urn_batch)
    written(fhir, answer["entry"][0], "201 Created", "Patient")
    written(fhir, answer["entry"][1], "201 Created", "Observation")
    read = same_resource(fhir, answer["entry"][1]["response"]["location"], urn_batch[1]["resource"])
    assert read["subject"]["reference"] == p


def profile_breakers(examples) -> list:
    """(name, Observation) that break a vital-signs profile: the examples rejected
    alone, and a heart rate without valueQuantity.unit."""
    broken = [(stem, stripped(resource)) for stem, resource in examples["rejected"]]
    broken.append(("heart-rate without unit", heart_rate("Patient/x", unit=False)))
    return broken


def test_an_example_rejected_alone_fails_the_transaction_with_422(fhir, examples):
    """Each Observation the profile rejects (422 alone) fails a transaction of
    examples with 422 naming its entry; nothing is written. In a batch only
    that entry fails (422 with an outcome); the others are stored."""
    accepted = [stripped(r) for _, r in examples["accepted"][:3]]
    for name, bad in profile_breakers(examples):
        fhir.expect(422, "POST", "/fhir/Observation", bad)
        value = tag()
        p = urn()
        bad = {**bad, "subject": {"reference": p}, "identifier": ident(value)}
        good = [post(patient(value), p)] + [post({**r, "identifier": ident(value)}) for r in accepted]
        entries = good[:2] + [post(bad)] + good[2:]
        before = fhir.state()
        outcome = fhir.bundle("transaction", entries, status=422)
        names_entry(outcome, 2)
        assert fhir.state() == before, name
        assert fhir.total(by_ident("Observation", value)) == 0 and fhir.total(by_ident("Patient", value)) == 0

        answer = fhir.bundle("batch", entries)
        for n, got in enumerate(answer["entry"]):
            if n == 2:
                failed_entry(got, 422)
            else:
                written(fhir, got, "201 Created", entries[n]["resource"]["resourceType"])
        assert fhir.ledger_size() == before[0] + len(entries) - 1, name


# ----------------------------------------------------------------------
# 2. A transaction whose last entry fails leaves nothing behind
# ----------------------------------------------------------------------

FAILURES = {
    # name: (status, how the failing entry is made from the existing resources)
    "404-delete-unknown": (404, lambda ex: delete(f"Patient/{tag()}")),
    "404-read-unknown": (404, lambda ex: get(f"Patient/{tag()}")),
    "410-read-deleted": (410, lambda ex: get(f"Patient/{ex['deleted']}")),
    "412-if-match": (412, lambda ex: put(f"Patient/{ex['other']}", patient(id=ex["other"]), if_match='W/"7"')),
    "412-if-none-exist-many": (412, lambda ex: post(patient(ex["twins"]),
                                                    if_none_exist=f"identifier={SYSTEM}|{ex['twins']}")),
    "412-conditional-update-many": (412, lambda ex: put(by_ident("Patient", ex["twins"]), patient(ex["twins"]))),
    "412-conditional-delete-many": (412, lambda ex: delete(by_ident("Patient", ex["twins"]))),
    "412-conditional-reference-none": (412, lambda ex: post(observation(subject=by_ident("Patient", tag())))),
    "422-profile": (422, lambda ex: post(heart_rate(f"Patient/{ex['kept']}", unit=False))),
    "400-invalid-resource": (400, lambda ex: post({"resourceType": "Patient", "bogus": True})),
    "400-put-id-mismatch": (400, lambda ex: put(f"Patient/{ex['other']}", patient(id=tag()))),
    "400-metadata": (400, lambda ex: get("metadata")),
    "405-patch": (405, lambda ex: {"request": {"method": "PATCH", "url": f"Patient/{ex['other']}"}}),
}


@pytest.mark.parametrize("failure", FAILURES, ids=list(FAILURES))
def test_transaction_whose_last_entry_fails_writes_nothing(fhir, failure):
    """Creates, an update, a delete and a conditional update come first; the
    last entry fails: the answer is one OperationOutcome with the failing
    entry's status naming Bundle.entry[last]; no created resource is
    searchable, the updated and deleted ones are as before, history totals
    and the ledger size are unchanged."""
    status, make = FAILURES[failure]
    existing = {"kept": fhir.create(patient(tag(), active=True)), "deleted": fhir.create(patient(tag())),
                "doomed": fhir.create(patient(tag())), "other": fhir.create(patient(tag())), "twins": tag()}
    fhir.create(patient(existing["twins"]))
    fhir.create(patient(existing["twins"]))
    fhir.expect(204, "DELETE", f"/fhir/Patient/{existing['deleted']}")
    kept = fhir.expect(200, "GET", f"/fhir/Patient/{existing['kept']}")
    value, p = tag(), urn()
    entries = [
        post(patient(value), p),
        post(observation(value, subject=p)),
        put(f"Patient/{existing['kept']}", patient(id=existing["kept"], active=False)),
        delete(f"Patient/{existing['doomed']}"),
        put(by_ident("Observation", value + "-cond"), observation(value + "-cond")),
        make(existing),
    ]
    before = fhir.state()
    outcome = fhir.bundle("transaction", entries, status=status)
    names_entry(outcome, len(entries) - 1)
    assert fhir.state() == before
    assert fhir.total(by_ident("Patient", value)) == 0
    assert fhir.total(by_ident("Observation", value)) == 0
    assert fhir.total(by_ident("Observation", value + "-cond")) == 0
    assert fhir.expect(200, "GET", f"/fhir/Patient/{existing['kept']}") == kept
    assert fhir.version("Patient", existing["doomed"]) == "1"
    assert fhir.total(f"Patient/{existing['kept']}/_history") == 1


# ----------------------------------------------------------------------
# 3. Batches: independent entries
# ----------------------------------------------------------------------


def test_batch_with_good_and_bad_entries_answers_each_in_order(fhir):
    """Good entries are stored (201, readable); each bad one gets its own
    status and OperationOutcome; order is the request's; the ledger grows by
    the good writes only."""
    value = tag()
    known = fhir.create(patient(tag()))
    entries = [
        post(patient(value)),                                           # 0 201
        post({"resourceType": "Patient", "bogus": 1}),                  # 1 400
        post(observation(value, subject=f"Patient/{known}")),           # 2 201
        delete(f"Patient/{tag()}"),                                     # 3 404
        put(f"Patient/{known}", patient(id=tag())),                     # 4 400 id mismatch
        {"request": {"method": "PATCH", "url": f"Patient/{known}"}},    # 5 405
        get(f"Patient/{tag()}"),                                        # 6 404
        get("metadata"),                                                # 7 400
        post(heart_rate(f"Patient/{known}", unit=False)),               # 8 422
        put(f"Patient/{known}", patient(id=known, active=True)),        # 9 200
        put(f"Patient/{known}", patient(id=known), if_match='W/"1"'),   # 10 412 (9 made it version 2)
        get(f"Patient/{known}/_history/1/$ledger"),                     # 11 400
        post(patient(value)),                                           # 12 201
        put(f"Patient/{known}", patient()),                             # 13 400 no id
        put(f"Patient/{known}", patient(id=known), if_match="W/abc"),   # 14 400 not an ETag
    ]
    before = fhir.ledger_size()
    answer = fhir.bundle("batch", entries)
    got = answer["entry"]
    created = [written(fhir, got[0], "201 Created", "Patient"), written(fhir, got[2], "201 Created", "Observation"),
               written(fhir, got[12], "201 Created", "Patient")]
    failures = ((1, 400), (3, 404), (4, 400), (5, 405), (6, 404), (7, 400), (8, 422), (10, 412), (11, 400),
                (13, 400), (14, 400))
    for n, status in failures:
        failed_entry(got[n], status)
    written(fhir, got[9], "200 OK", "Patient", version=2)
    assert fhir.ids(by_ident("Patient", value)) == {created[0], created[2]}
    assert fhir.ids(by_ident("Observation", value)) == {created[1]}
    assert fhir.ledger_size() == before + 4
    assert fhir.version("Patient", known) == "2"


def test_batch_entries_are_independent_even_when_they_touch_one_resource(fhir):
    """A batch may write one resource twice: each entry is its own interaction
    (two updates: versions 2 and 3, in some order)."""
    rid = fhir.create(patient(tag()))
    answer = fhir.bundle("batch", [put(f"Patient/{rid}", patient(id=rid, active=True)),
                                   put(f"Patient/{rid}", patient(id=rid, active=False))])
    versions = sorted(e["response"]["etag"] for e in answer["entry"])
    assert versions == ['W/"2"', 'W/"3"'], answer
    assert fhir.version("Patient", rid) == "3"


# ----------------------------------------------------------------------
# 4. Conditional writes, ifNoneExist, ifMatch, GET entries
# ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_get_entries_see_the_writes_of_the_same_bundle(fhir, kind):
    """GET entries run after the writes, whatever their place in the Bundle:
    a search before the POST already finds it (total 1); a read of an updated
    resource sees the new version; a vread of an update-as-create works."""
    value, own, rid = tag(), tag(), fhir.create(patient(tag()))
    entries = [
        get(by_ident("Patient", value)),
        post(patient(value)),
        put(f"Patient/{rid}", patient(id=rid, active=True)),
        put(f"Patient/{own}", patient(id=own)),
        get(by_ident("Patient", value)),
        get(f"Patient/{rid}"),
        get(f"Patient/{own}/_history/1"),
        get(f"Patient/{rid}/_history"),
    ]
    answer = fhir.bundle(kind, entries)
    got = answer["entry"]
    new = written(fhir, got[1], "201 Created", "Patient")
    written(fhir, got[2], "200 OK", "Patient", version=2)
    assert written(fhir, got[3], "201 Created", "Patient") == own
    for n in (0, 4):
        assert got[n]["response"]["status"] == "200 OK", got[n]
        found = got[n]["resource"]
        assert found["type"] == "searchset" and int(found["total"]) == 1, found
        assert found["entry"][0]["resource"]["id"] == new, found
    assert got[5]["resource"]["meta"]["versionId"] == "2" and got[5]["resource"]["active"] is True, got[5]
    assert got[6]["resource"]["id"] == own and got[6]["resource"]["meta"]["versionId"] == "1", got[6]
    assert got[7]["resource"]["type"] == "history" and int(got[7]["resource"]["total"]) == 2, got[7]


def test_if_none_exist_in_transactions_and_batches(fhir):
    """ifNoneExist: no match creates (201); one match answers 200 with the
    existing resource and writes nothing; several: 412 (the whole transaction;
    only that entry of a batch)."""
    value = tag()
    condition = f"identifier={SYSTEM}|{value}"
    first = fhir.bundle("transaction", [post(patient(value), if_none_exist=condition)])
    rid = written(fhir, first["entry"][0], "201 Created", "Patient")

    before = fhir.state()
    for kind, cond in (("transaction", condition), ("batch", condition), ("transaction", f"Patient?{condition}")):
        again = fhir.bundle(kind, [post(patient(value, active=True), urn(), if_none_exist=cond)])
        assert written(fhir, again["entry"][0], "200 OK", "Patient") == rid
        assert "active" not in again["entry"][0]["resource"], "the match is the answer, not the body"
    assert fhir.state() == before

    fhir.create(patient(value))
    before = fhir.state()
    outcome = fhir.bundle("transaction", [post(patient(tag())), post(patient(value), if_none_exist=condition)],
                          status=412)
    names_entry(outcome, 1)
    assert fhir.state() == before
    answer = fhir.bundle("batch", [post(patient(value), if_none_exist=condition), post(patient(tag()))])
    failed_entry(answer["entry"][0], 412)
    written(fhir, answer["entry"][1], "201 Created", "Patient")


def test_if_match_in_transactions_and_batches(fhir):
    """ifMatch W/"n": the current version updates or deletes; another fails
    with 412 (the transaction: nothing written)."""
    rid = fhir.create(patient(tag()))
    answer = fhir.bundle("batch", [put(f"Patient/{rid}", patient(id=rid, active=True), if_match='W/"1"')])
    written(fhir, answer["entry"][0], "200 OK", "Patient", version=2)
    answer = fhir.bundle("batch", [put(f"Patient/{rid}", patient(id=rid), if_match='W/"1"'), post(patient(tag()))])
    failed_entry(answer["entry"][0], 412)
    written(fhir, answer["entry"][1], "201 Created", "Patient")
    before = fhir.state()
    outcome = fhir.bundle("transaction", [post(patient(tag())), delete(f"Patient/{rid}", if_match='W/"1"')],
                          status=412)
    names_entry(outcome, 1)
    assert fhir.state() == before
    answer = fhir.bundle("transaction", [delete(f"Patient/{rid}", if_match='W/"2"')])
    assert answer["entry"][0]["response"]["status"] == "204 No Content", answer
    fhir.expect(410, "GET", f"/fhir/Patient/{rid}")


def test_conditional_update_in_a_transaction(fhir):
    """PUT Type?search: no match creates (a new id, or the body's id); one
    match updates it (version 2, same id); a body id that differs from the
    match: 400; several matches: 412."""
    value = tag()
    answer = fhir.bundle("transaction", [put(by_ident("Patient", value), patient(value))])
    rid = written(fhir, answer["entry"][0], "201 Created", "Patient")
    answer = fhir.bundle("transaction", [put(by_ident("Patient", value), patient(value, active=True))])
    assert written(fhir, answer["entry"][0], "200 OK", "Patient", version=2) == rid
    answer = fhir.bundle("transaction", [put(by_ident("Patient", value), patient(value, id=rid, active=False))])
    assert written(fhir, answer["entry"][0], "200 OK", "Patient", version=3) == rid

    before = fhir.state()
    outcome = fhir.bundle("transaction", [put(by_ident("Patient", value), patient(value, id=tag()))], status=400)
    names_entry(outcome, 0)
    assert fhir.state() == before

    own, other = tag(), tag()
    answer = fhir.bundle("transaction", [put(by_ident("Patient", other), patient(other, id=own))])
    assert written(fhir, answer["entry"][0], "201 Created", "Patient") == own

    fhir.create(patient(other))
    before = fhir.state()
    outcome = fhir.bundle("transaction", [post(patient(tag())), put(by_ident("Patient", other), patient(other))],
                          status=412)
    names_entry(outcome, 1)
    assert fhir.state() == before


def test_conditional_update_in_a_batch(fhir):
    """The same rules per entry of a batch: 201, 200, 400, 412 side by side."""
    fresh, one, many = tag(), tag(), tag()
    rid = fhir.create(patient(one))
    fhir.create(patient(many))
    fhir.create(patient(many))
    answer = fhir.bundle("batch", [
        put(by_ident("Patient", fresh), patient(fresh)),
        put(by_ident("Patient", one), patient(one, active=True)),
        put(by_ident("Patient", many), patient(many)),
        put(by_ident("Patient", one), patient(one, id=tag())),
    ])
    got = answer["entry"]
    written(fhir, got[0], "201 Created", "Patient")
    assert written(fhir, got[1], "200 OK", "Patient", version=2) == rid
    failed_entry(got[2], 412)
    failed_entry(got[3], 400)


def test_conditional_update_without_a_match_does_not_overwrite_another_resource(fhir):
    """PUT Patient?identifier=x with no match and a body id that is another,
    existing resource's id (which does not match x): R4 says no match ->
    create; a create of an existing id must fail (409), not silently update
    a resource the condition did not select."""
    victim = fhir.create(patient(tag(), active=True))
    value = tag()
    for kind in ("transaction", "batch"):
        answer = fhir.send("POST", "/fhir", {"resourceType": "Bundle", "type": kind, "entry": [
            put(by_ident("Patient", value), patient(value, id=victim))]})
        assert fhir.version("Patient", victim) == "1", (
            f"{kind}: a conditional update with no match overwrote Patient/{victim}: {excerpt(answer.body, 800)}")
    response = fhir.send("PUT", f"/fhir/{by_ident('Patient', value)}", patient(value, id=victim))
    assert fhir.version("Patient", victim) == "1", (
        f"PUT /fhir/{by_ident('Patient', value)} overwrote Patient/{victim}: {response.status}")


def test_conditional_delete_in_transactions_and_batches(fhir):
    """DELETE Type?search: no match 204 and nothing written; one match deletes
    it (read: 410; one ledger entry of kind delete); several 412. DELETE
    Type/id: unknown 404; already deleted 204 and nothing written."""
    none, one, many = tag(), tag(), tag()
    rid = fhir.create(patient(one))
    fhir.create(patient(many))
    fhir.create(patient(many))

    before = fhir.state()
    for kind in ("transaction", "batch"):
        answer = fhir.bundle(kind, [delete(by_ident("Patient", none)), delete(by_ident("Patient", tag()))])
        assert [e["response"]["status"] for e in answer["entry"]] == ["204 No Content"] * 2, answer
    assert fhir.state() == before

    size = fhir.ledger_size()
    answer = fhir.bundle("transaction", [delete(by_ident("Patient", one))])
    assert answer["entry"][0]["response"]["status"] == "204 No Content", answer
    assert "resource" not in answer["entry"][0], answer
    fhir.expect(410, "GET", f"/fhir/Patient/{rid}")
    assert fhir.ledger_refs(size, fhir.ledger_size()) == [f"delete Patient/{rid}/_history/2"]

    before = fhir.state()
    outcome = fhir.bundle("transaction", [delete(by_ident("Patient", many))], status=412)
    names_entry(outcome, 0)
    answer = fhir.bundle("batch", [delete(by_ident("Patient", many)), delete(f"Patient/{tag()}"),
                                   delete(f"Patient/{rid}")])
    failed_entry(answer["entry"][0], 412)
    failed_entry(answer["entry"][1], 404)
    assert answer["entry"][2]["response"]["status"] == "204 No Content", answer
    answer = fhir.bundle("transaction", [delete(f"Patient/{rid}")])
    assert answer["entry"][0]["response"]["status"] == "204 No Content", answer
    assert fhir.state() == before
    assert fhir.total(by_ident("Patient", many)) == 2


def test_transaction_deletes_run_before_creates(fhir):
    """DELETE, POST, PUT, GET: a conditional delete that would match the
    transaction's own create runs first (against the state before the
    transaction), so it deletes nothing and the create survives."""
    value = tag()
    answer = fhir.bundle("transaction", [post(patient(value)), delete(by_ident("Patient", value)),
                                         get(by_ident("Patient", value))])
    rid = written(fhir, answer["entry"][0], "201 Created", "Patient")
    assert answer["entry"][1]["response"]["status"] == "204 No Content", answer
    assert fhir.ids(by_ident("Patient", value)) == {rid}
    assert int(answer["entry"][2]["resource"]["total"]) == 1


def test_two_entries_writing_one_resource_fail_the_transaction(fhir):
    """Two entries that write one resource (PUT and DELETE of one id; a
    conditional update resolving to a PUT's id; two conditional deletes of
    one match) and a duplicate fullUrl: 400, nothing written."""
    value = tag()
    rid = fhir.create(patient(value))
    full_url = urn()
    cases = [
        [put(f"Patient/{rid}", patient(id=rid, active=True)), delete(f"Patient/{rid}")],
        [post(patient(tag())), put(f"Patient/{rid}", patient(id=rid)), put(by_ident("Patient", value), patient(value))],
        [delete(by_ident("Patient", value)), delete(f"Patient/{rid}")],
        [post(patient(tag()), full_url), post(patient(tag()), full_url)],
    ]
    for entries in cases:
        before = fhir.state()
        outcome = fhir.bundle("transaction", entries, status=400)
        assert outcome["issue"][0].get("expression", [""])[0].startswith("Bundle.entry["), outcome
        assert fhir.state() == before, entries
    assert fhir.version("Patient", rid) == "1"


def test_prefer_return_minimal_and_operation_outcome(fhir):
    """Prefer: return=minimal omits each entry's resource; return=OperationOutcome
    puts an OperationOutcome in response.outcome; both keep status, location, etag."""
    for kind in ("transaction", "batch"):
        answer = fhir.bundle(kind, [post(patient(tag()))], prefer="return=minimal")
        written(fhir, answer["entry"][0], "201 Created", "Patient", minimal=True)
        answer = fhir.bundle(kind, [post(patient(tag()))], prefer="return=OperationOutcome")
        written(fhir, answer["entry"][0], "201 Created", "Patient", minimal=True)
        assert answer["entry"][0]["response"]["outcome"]["resourceType"] == "OperationOutcome", answer


# ----------------------------------------------------------------------
# 5. urn:uuid after conditional resolution; conditional references
# ----------------------------------------------------------------------


def test_urn_of_a_conditional_update_resolves_to_the_matched_patient(fhir):
    """PUT Patient?identifier=x (fullUrl urn:A) and an Observation referencing
    urn:A: the first run creates the Patient, the second updates it; both
    Observations reference that same Patient id."""
    value = tag()
    pids, subjects, observations = [], [], []
    for run in (1, 2):
        a = urn()
        answer = fhir.bundle("transaction", [
            post(observation(value, subject=a)),
            put(by_ident("Patient", value), patient(value, active=run == 2), a),
            post(observation(value, extension=[{"url": "http://example.org/x", "valueUri": a}])),
        ])
        got = answer["entry"]
        pids.append(written(fhir, got[1], "201 Created" if run == 1 else "200 OK", "Patient", version=run))
        obs = written(fhir, got[0], "201 Created", "Observation")
        observations.append(obs)
        subjects.append(fhir.expect(200, "GET", f"/fhir/Observation/{obs}")["subject"]["reference"])
        read = fhir.expect(200, "GET", got[2]["response"]["location"])
        assert read["extension"][0]["valueUri"] == f"Patient/{pids[-1]}", read
    assert pids[0] == pids[1]
    assert subjects == [f"Patient/{pids[0]}"] * 2
    assert fhir.ids(f"Observation?subject=Patient/{pids[0]}") == set(observations)


def test_urn_of_a_conditional_create_resolves_to_the_match(fhir):
    """POST with ifNoneExist that matches (fullUrl urn:A): a reference to urn:A
    becomes the existing Patient."""
    value = tag()
    rid = fhir.create(patient(value))
    a = urn()
    answer = fhir.bundle("transaction", [post(patient(value), a, if_none_exist=f"identifier={SYSTEM}|{value}"),
                                         post(observation(subject=a))])
    assert written(fhir, answer["entry"][0], "200 OK", "Patient") == rid
    assert answer["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{rid}"


def test_conditional_references_must_match_exactly_one(fhir):
    """"reference": "Patient?identifier=s|v": one match is rewritten to
    "Patient/id"; no match or several: 412 naming the entry, nothing written."""
    one, many = tag(), tag()
    rid = fhir.create(patient(one))
    fhir.create(patient(many))
    fhir.create(patient(many))
    answer = fhir.bundle("transaction", [post(observation(subject=by_ident("Patient", one)))])
    obs = written(fhir, answer["entry"][0], "201 Created", "Observation")
    assert fhir.expect(200, "GET", f"/fhir/Observation/{obs}")["subject"]["reference"] == f"Patient/{rid}"
    for missing in (by_ident("Patient", tag()), by_ident("Patient", many)):
        before = fhir.state()
        outcome = fhir.bundle("transaction", [post(patient(tag())), post(observation(subject=missing))],
                              status=412)
        names_entry(outcome, 1)
        assert fhir.state() == before


def test_urn_references_everywhere_in_the_bundle_are_rewritten(fhir):
    """A urn:uuid fullUrl is rewritten in every resource of the transaction:
    in Reference.reference of a PUT body, in a uri element (extension
    valueUri), and in the resource that the fullUrl names itself (Patient.link)."""
    a, b = urn(), urn()
    own = tag()
    answer = fhir.bundle("transaction", [
        post(patient(tag(), link=[{"other": {"reference": b}, "type": "seealso"}]), a),
        put(f"Patient/{own}", patient(id=own, link=[{"other": {"reference": a}, "type": "seealso"}]), b),
        post(observation(subject=a, extension=[{"url": "http://example.org/x", "valueUri": b}])),
    ])
    got = answer["entry"]
    first = written(fhir, got[0], "201 Created", "Patient")
    assert written(fhir, got[1], "201 Created", "Patient") == own
    assert fhir.expect(200, "GET", f"/fhir/Patient/{first}")["link"][0]["other"]["reference"] == f"Patient/{own}"
    assert fhir.expect(200, "GET", f"/fhir/Patient/{own}")["link"][0]["other"]["reference"] == f"Patient/{first}"
    read = fhir.expect(200, "GET", got[2]["response"]["location"])
    assert read["subject"]["reference"] == f"Patient/{first}"
    assert read["extension"][0]["valueUri"] == f"Patient/{own}"


# ----------------------------------------------------------------------
# 6. Limits and malformed Bundles
# ----------------------------------------------------------------------


def test_more_than_1000_entries_answer_413(fhir):
    """1001 entries: 413 and an OperationOutcome, nothing written; 1000: 200."""
    before = fhir.state()
    value = tag()
    for kind in ("transaction", "batch"):
        outcome = fhir.bundle(kind, [post(patient(value)) for _ in range(1001)], status=413)
        assert outcome["resourceType"] == "OperationOutcome"
    assert fhir.state() == before
    answer = fhir.bundle("batch", [get(f"Patient/{value}") for _ in range(1000)])
    assert all(e["response"]["status"] == "404 Not Found" for e in answer["entry"])


def test_max_entries_option(settings, request):
    """serve --max-entries 3: 4 entries 413, 3 entries 200."""
    with fresh_server(settings, request, "--max-entries", "3") as fhir:
        fhir.bundle("transaction", [post(patient()) for _ in range(4)], status=413)
        assert fhir.ledger_size() == 0
        answer = fhir.bundle("transaction", [post(patient()) for _ in range(3)])
        assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 3
        assert fhir.ledger_size() == 3


@pytest.mark.parametrize("body, status", [
    ({"resourceType": "Patient"}, 400),
    ({"resourceType": "Bundle", "type": "collection", "entry": [post(patient())]}, 400),
    ({"resourceType": "Bundle", "type": "searchset"}, 400),
    ({"resourceType": "Bundle", "type": "transaction-response"}, 400),
    ({"resourceType": "Bundle"}, 400),
    ({"resourceType": "Bundle", "type": "transaction", "entry": {}}, 400),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": patient()}]}, 400),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "GET"}}]}, 400),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "POST", "url": "Patient"}}]}, 400),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": observation(), "request": {"method": "POST", "url": "Patient"}}]}, 400),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [get("Patient/x/_history/1/$ledger")]}, 400),
    # entry URLs are relative to the FHIR base: these route to no FHIR type,
    # as the same request outside a Bundle would (404)
    ({"resourceType": "Bundle", "type": "transaction", "entry": [get("/ledger/checkpoint")]}, 404),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [get("ledger/entries?start=0&end=1")]}, 404),
    ({"resourceType": "Bundle", "type": "transaction", "entry": [
        post({"resourceType": "Bundle", "type": "transaction"})]}, 404),
    (b"{not json", 400),
], ids=["patient", "collection", "searchset", "response-type", "no-type", "entry-object", "no-request",
        "no-url", "post-no-resource", "type-mismatch", "ledger-op", "ledger-path", "ledger-relative",
        "nested-bundle", "not-json"])
def test_malformed_bundles_are_rejected(fhir, body, status):
    """Not a batch/transaction Bundle, or a malformed entry: an OperationOutcome, nothing written."""
    before = fhir.ledger_size()
    outcome = fhir.expect(status, "POST", "/fhir", body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert fhir.ledger_size() == before


def test_empty_bundles_answer_200_without_entries(fhir):
    for kind in ("transaction", "batch"):
        for body in ({"resourceType": "Bundle", "type": kind},
                     {"resourceType": "Bundle", "type": kind, "entry": []}):
            answer = fhir.expect(200, "POST", "/fhir", body)
            assert answer["type"] == f"{kind}-response" and answer.get("entry", []) == [], answer


def test_a_bundle_needs_a_fhir_json_content_type(fhir):
    response = fhir.send("POST", "/fhir", b'{"resourceType":"Bundle","type":"batch"}',
                         headers={"Content-Type": "text/plain"})
    assert response.status == 415, response.text


# ----------------------------------------------------------------------
# 7. Conditional update and delete outside Bundles
# ----------------------------------------------------------------------


def test_direct_conditional_update(fhir):
    """PUT /fhir/Patient?identifier=...: no match 201 (Location, new id), one
    match 200 (same id, version 2), a differing body id 400, several 412."""
    value = tag()
    path = f"/fhir/{by_ident('Patient', value)}"
    response = fhir.send("PUT", path, patient(value))
    assert response.status == 201, response.text
    rid = response.json["id"]
    assert response.header("Location") == f"{fhir.base}/fhir/Patient/{rid}/_history/1"
    assert response.header("ETag") == 'W/"1"'
    response = fhir.send("PUT", path, patient(value, active=True))
    assert response.status == 200 and response.json["id"] == rid, response.text
    assert response.json["meta"]["versionId"] == "2" and response.header("ETag") == 'W/"2"'
    fhir.expect(200, "PUT", path, patient(value, id=rid))
    before = fhir.state()
    fhir.expect(400, "PUT", path, patient(value, id=tag()))
    assert fhir.state() == before
    fhir.create(patient(value))
    before = fhir.state()
    fhir.expect(412, "PUT", path, patient(value))
    assert fhir.state() == before
    own, other = tag(), tag()
    created = fhir.expect(201, "PUT", f"/fhir/{by_ident('Patient', other)}", patient(other, id=own))
    assert created["id"] == own


def test_direct_conditional_delete(fhir):
    """DELETE /fhir/Patient?identifier=...: no match 204 (or 200) and nothing
    written; one match deletes it (410 after); several 412."""
    value = tag()
    path = f"/fhir/{by_ident('Patient', value)}"
    before = fhir.state()
    response = fhir.send("DELETE", path)
    assert response.status in (200, 204), response.text
    assert fhir.state() == before
    rid = fhir.create(patient(value))
    size = fhir.ledger_size()
    response = fhir.send("DELETE", path)
    assert response.status in (200, 204), response.text
    fhir.expect(410, "GET", f"/fhir/Patient/{rid}")
    assert fhir.ledger_refs(size, fhir.ledger_size()) == [f"delete Patient/{rid}/_history/2"]
    fhir.create(patient(value))
    fhir.create(patient(value))
    before = fhir.state()
    fhir.expect(412, "DELETE", path)
    assert fhir.state() == before
    assert fhir.total(by_ident("Patient", value)) == 2
