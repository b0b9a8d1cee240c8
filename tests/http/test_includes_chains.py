"""_include, _revinclude (and :iterate), chained parameters and _has
against the real binary (R4 search.html#include, #revinclude, #chaining,
#has), as an admin and as clinics whose Consents cover some patients only.

The world (one per module):

    Patient A, B, C (each a name and an identifier); Practitioner pr;
    Organization og; Device dA (patient A), dB (patient B), dC (patient C)

    Observation  subject  code     performer        device
    oA1          A        8867-4   Practitioner/pr  dA
    oA2          A        9279-1   Organization/og  dC
    oA3          A        9279-1   Patient/B        dB
    oB1          B        8867-4   Patient/A        -
    oB2          B        2708-6   -                -
    oC1          C        9279-1   -                dC

Clinic 1 has a Consent of A only: it sees A, dA, oA1-oA3 and oB1 (in A's
compartment through its performer), never B, dB, dC, oB2 or C. Clinic 2
has a Consent of A and one of B for the type Patient only: it also sees
B's Patient, but none of B's Observations but oB1. An include, a chain or
a _has must never show what the caller may not read (nor that it exists).

Every test states in its assertion message what the server should have
done; a failing assertion is a deviation of the server, not of the test.
"""

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from requests.structures import CaseInsensitiveDict

import harness

LOINC = "http://loinc.org"


def call(server, method, target, token=None, body=None):
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


def search(server, target, token=None):
    """GET a search: 200, a searchset; returns (matches, included, bundle)
    with entries as "Type/id"; every entry is match or include."""
    r = call(server, "GET", target, token)
    assert r.status == 200, f"GET {target}: expected 200, got {r.status}: {r.text[:600]}"
    b = json.loads(r.body)
    assert b.get("resourceType") == "Bundle" and b.get("type") == "searchset", r.text[:300]
    got = {"match": [], "include": []}
    for e in b.get("entry", []):
        mode = e.get("search", {}).get("mode")
        assert mode in got, f"{target}: search.mode {mode!r} (match or include expected)"
        res = e["resource"]
        got[mode].append(f"{res['resourceType']}/{res['id']}")
        assert e.get("fullUrl", "").endswith(f"/{res['resourceType']}/{res['id']}"), e.get("fullUrl")
    for mode, refs in got.items():
        assert len(refs) == len(set(refs)), f"{target}: a resource is twice in the Bundle ({mode}): {refs}"
    assert not set(got["match"]) & set(got["include"]), \
        f"{target}: a match is also an include: {got}"
    return got["match"], got["include"], b


def refused(server, target, why, token=None, status=400):
    r = call(server, "GET", target, token)
    assert r.status == status, f"{why}: GET {target} should be {status}, got {r.status}: {r.text[:400]}"
    assert json.loads(r.body).get("resourceType") == "OperationOutcome", r.text[:400]


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--data", str(server.root), "--role", role,
                        "--subject", subject], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def consent(cid, patient, actor, **provision):
    """An active Consent (the shape of test_consent.py) that permits
    `actor` to access the patient's data (provision: class, code, ...)."""
    prov = {"type": "permit",
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "PRCP"}]},
                       "reference": {"reference": actor}}],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                    "code": "access"}]}]}
    prov.update(provision)
    return {"resourceType": "Consent", "id": cid, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{patient}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": prov}


class World:
    """The ids of the module's resources (see the module's docstring)."""

    def __init__(self, uid):
        self.uid = uid
        self.system = f"urn:vitalog-test:{uid}"
        for k in ("A", "B", "C"):
            setattr(self, f"p{k}", f"ip{k}{uid}")
            setattr(self, f"name{k}", {"A": "Alpha", "B": "Bravo", "C": "Charlie"}[k] + uid)
            setattr(self, f"d{k}", f"id{k}{uid}")
        self.pr, self.og = f"ipr{uid}", f"iog{uid}"
        for o in ("oA1", "oA2", "oA3", "oB1", "oB2", "oC1"):
            setattr(self, o, f"i{o}{uid}")

    def resources(self):
        res = []
        for k in ("A", "B", "C"):
            res.append({"resourceType": "Patient", "id": getattr(self, f"p{k}"),
                        "identifier": [{"system": self.system, "value": k}],
                        "name": [{"family": getattr(self, f"name{k}"), "given": ["Test"]}]})
            res.append({"resourceType": "Device", "id": getattr(self, f"d{k}"),
                        "identifier": [{"system": self.system, "value": f"device-{k}"}],
                        "patient": {"reference": f"Patient/{getattr(self, f'p{k}')}"}})
        res.append({"resourceType": "Practitioner", "id": self.pr, "name": [{"family": "Doc" + self.uid}]})
        res.append({"resourceType": "Organization", "id": self.og, "name": "Org" + self.uid})
        rows = [("oA1", "A", "8867-4", f"Practitioner/{self.pr}", self.dA),
                ("oA2", "A", "9279-1", f"Organization/{self.og}", self.dC),
                ("oA3", "A", "9279-1", f"Patient/{self.pB}", self.dB),
                ("oB1", "B", "8867-4", f"Patient/{self.pA}", None),
                ("oB2", "B", "2708-6", None, None),
                ("oC1", "C", "9279-1", None, self.dC)]
        for name, subject, code, performer, device in rows:
            o = {"resourceType": "Observation", "id": getattr(self, name), "status": "final",
                 "code": {"coding": [{"system": LOINC, "code": code}]},
                 "subject": {"reference": f"Patient/{getattr(self, 'p' + subject)}"},
                 "effectiveDateTime": "2024-05-06T10:00:00Z",
                 "valueQuantity": {"value": 70, "unit": "/min", "system": "http://unitsofmeasure.org",
                                   "code": "/min"}}
            if performer:
                o["performer"] = [{"reference": performer}]
            if device:
                o["device"] = {"reference": f"Device/{device}"}
            res.append(o)
        return res


@pytest.fixture(scope="module")
def world(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-includes-"))
    with harness.serving(settings.binary, root) as server:
        server.root, server.binary = root, settings.binary
        w = World(uuid.uuid4().hex[:8])
        w.srv = server
        bundle = {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                            for r in w.resources()]}
        r = call(server, "POST", "/fhir", body=bundle)
        assert r.status == 200, r.text[:600]
        c1, c2 = f"Organization/ic1{w.uid}", f"Organization/ic2{w.uid}"
        for cid, pat, actor, extra in [
                (f"ic1a{w.uid}", w.pA, c1, {}),
                (f"ic2a{w.uid}", w.pA, c2, {}),
                (f"ic2b{w.uid}", w.pB, c2,
                 {"class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Patient"}]})]:
            r = call(server, "PUT", f"/fhir/Consent/{cid}", body=consent(cid, pat, actor, **extra))
            assert r.status == 201, r.text[:400]
        w.clinic1 = new_token(server, "clinic", c1)
        w.clinic2 = new_token(server, "clinic", c2)
        meta = json.loads(call(server, "GET", "/fhir/metadata").body)
        w.served = {res["type"] for res in meta["rest"][0]["resource"]}
        yield w
    shutil.rmtree(root, ignore_errors=True)


def readable(w, token, ref):
    return call(w.srv, "GET", f"/fhir/{ref}", token).status == 200


def test_what_the_clinics_see(world):
    """The preconditions of the consent tests below."""
    w = world
    for ref in (f"Patient/{w.pA}", f"Device/{w.dA}", f"Observation/{w.oA3}", f"Observation/{w.oB1}",
                f"Practitioner/{w.pr}"):
        assert readable(w, w.clinic1, ref), f"clinic 1 (Consent of A) should read {ref}"
    for ref in (f"Patient/{w.pB}", f"Device/{w.dB}", f"Device/{w.dC}", f"Observation/{w.oB2}",
                f"Patient/{w.pC}", f"Observation/{w.oC1}"):
        assert not readable(w, w.clinic1, ref), f"clinic 1 (Consent of A) should not read {ref}"
    assert readable(w, w.clinic2, f"Patient/{w.pB}"), "clinic 2 (Consent of B for Patient) should read B"
    for ref in (f"Observation/{w.oB2}", f"Device/{w.dB}"):
        assert not readable(w, w.clinic2, ref), f"clinic 2 (Consent of B for Patient only) should not read {ref}"


# ----------------------------------------------------------------------
# _include and _revinclude
# ----------------------------------------------------------------------


def test_include_subject_and_patient(world):
    w = world
    for param in ("Observation:subject", "Observation:patient", "Observation:subject:Patient"):
        m, inc, b = search(w.srv, f"/fhir/Observation?_id={w.oA1},{w.oA2},{w.oC1}&_include={param}")
        assert sorted(m) == sorted(f"Observation/{o}" for o in (w.oA1, w.oA2, w.oC1)), f"_include={param}: {m}"
        assert sorted(inc) == sorted([f"Patient/{w.pA}", f"Patient/{w.pC}"]), \
            f"_include={param}: each referenced Patient once, with search.mode include: {inc}"
        assert b.get("total") == 3, f"_include={param}: total counts the matches only: {b.get('total')}"
    # on every page, the includes of that page's matches; total as on the first page
    target = f"/fhir/Observation?_id={w.oA1},{w.oC1}&_include=Observation:subject&_count=1"
    seen = []
    while target:
        m, inc, b = search(w.srv, target)
        assert len(m) == 1 and b.get("total") == 2, f"{target}: one match a page, total 2: {m}, {b.get('total')}"
        subject = {f"Observation/{w.oA1}": f"Patient/{w.pA}", f"Observation/{w.oC1}": f"Patient/{w.pC}"}[m[0]]
        assert inc == [subject], f"{target}: the page includes its own match's subject: {inc}"
        seen += m
        target = next((link["url"] for link in b["link"] if link["relation"] == "next"), None)
    assert sorted(seen) == sorted([f"Observation/{w.oA1}", f"Observation/{w.oC1}"])
    m, inc, _ = search(w.srv, f"/fhir/Observation?_id={w.oA1}&_include=Observation:subject:Device")
    assert inc == [], f"_include=Observation:subject:Device: the subject is a Patient, nothing to include: {inc}"


def test_include_device_and_iterate_device_patient(world):
    w = world
    base = f"/fhir/Observation?_id={w.oA1},{w.oA2}&_include=Observation:device"
    m, inc, _ = search(w.srv, base)
    assert sorted(inc) == sorted([f"Device/{w.dA}", f"Device/{w.dC}"]), f"Observation:device: {inc}"
    m, inc, b = search(w.srv, base + "&_include:iterate=Device:patient")
    assert sorted(inc) == sorted([f"Device/{w.dA}", f"Device/{w.dC}", f"Patient/{w.pA}", f"Patient/{w.pC}"]), \
        f"_include:iterate=Device:patient should add the included Devices' patients: {inc}"
    assert len(m) == 2 and b.get("total") == 2


def test_include_performer(world):
    w = world
    types = [t for t in ("Practitioner", "Organization") if t in w.served]
    assert types, f"the CapabilityStatement serves neither Practitioner nor Organization: {w.served}"
    want = {"Practitioner": f"Practitioner/{w.pr}", "Organization": f"Organization/{w.og}"}
    m, inc, _ = search(w.srv, f"/fhir/Observation?_id={w.oA1},{w.oA2}&_include=Observation:performer")
    assert sorted(inc) == sorted(want[t] for t in types), f"Observation:performer: {inc}"
    for t in types:
        m, inc, _ = search(w.srv, f"/fhir/Observation?_id={w.oA1},{w.oA2}&_include=Observation:performer:{t}")
        assert inc == [want[t]], f"Observation:performer:{t}: only the {t}: {inc}"


def test_revinclude(world):
    w = world
    m, inc, b = search(w.srv, f"/fhir/Patient?_id={w.pA},{w.pC}&_revinclude=Observation:subject")
    assert sorted(m) == sorted([f"Patient/{w.pA}", f"Patient/{w.pC}"])
    assert sorted(inc) == sorted(f"Observation/{o}" for o in (w.oA1, w.oA2, w.oA3, w.oC1)), \
        f"_revinclude=Observation:subject should add the patients' Observations: {inc}"
    assert b.get("total") == 2, f"total counts the matches only: {b.get('total')}"
    m, inc, _ = search(w.srv, f"/fhir/Patient?_id={w.pA}&_revinclude=Device:patient")
    assert inc == [f"Device/{w.dA}"], f"_revinclude=Device:patient: {inc}"
    m, inc, _ = search(w.srv, f"/fhir/Patient?_id={w.pB}&_revinclude=Observation:performer")
    assert inc == [f"Observation/{w.oA3}"], f"_revinclude=Observation:performer: {inc}"


def test_includes_show_nothing_the_caller_may_not_see(world):
    w = world
    every = "&_include=Observation:subject&_include=Observation:performer&_include=Observation:device"
    m, inc, b = search(w.srv, f"/fhir/Observation?_id={w.oA3},{w.oB1},{w.oB2}{every}", w.clinic1)
    assert sorted(m) == sorted([f"Observation/{w.oA3}", f"Observation/{w.oB1}"]), \
        f"clinic 1 matches oA3 and oB1 (A's compartment), not oB2: {m}"
    assert b.get("total") == 2
    for hidden in (f"Patient/{w.pB}", f"Device/{w.dB}"):
        assert hidden not in inc, (
            f"clinic 1 (Consent of A only): {hidden} is in B's compartment and must be absent from the "
            f"Bundle, not included through oA3's performer/device or oB1's subject: {inc}")
    assert inc == [f"Patient/{w.pA}"], f"clinic 1: only A is both referenced and visible: {inc}"
    # one level further: dC (patient C) and C stay out
    m, inc, _ = search(w.srv, f"/fhir/Observation?patient={w.pA}&_include=Observation:device"
                              "&_include:iterate=Device:patient", w.clinic1)
    assert sorted(m) == sorted(f"Observation/{o}" for o in (w.oA1, w.oA2, w.oA3))
    assert sorted(inc) == sorted([f"Device/{w.dA}", f"Patient/{w.pA}"]), \
        f"clinic 1: dB and dC (B's and C's) and C itself must be absent: {inc}"
    # reverse: B's Observations stay out, also when B's Patient is visible
    m, inc, _ = search(w.srv, f"/fhir/Patient?_id={w.pA},{w.pB}&_revinclude=Observation:subject"
                              "&_revinclude=Device:patient", w.clinic1)
    assert m == [f"Patient/{w.pA}"], f"clinic 1 matches A only: {m}"
    assert sorted(inc) == sorted([f"Observation/{w.oA1}", f"Observation/{w.oA2}", f"Observation/{w.oA3}",
                                  f"Device/{w.dA}"]), f"clinic 1, _revinclude: {inc}"
    m, inc, b = search(w.srv, f"/fhir/Patient?_id={w.pA},{w.pB}&_revinclude=Observation:subject"
                              "&_revinclude=Device:patient", w.clinic2)
    assert sorted(m) == sorted([f"Patient/{w.pA}", f"Patient/{w.pB}"]), f"clinic 2 matches A and B: {m}"
    for hidden in (f"Observation/{w.oB2}", f"Device/{w.dB}"):
        assert hidden not in inc, \
            f"clinic 2 (B's Consent covers the Patient only): {hidden} must be absent: {inc}"
    assert b.get("total") == 2


def test_include_errors(world):
    w = world
    q = f"/fhir/Observation?_id={w.oA1}"
    refused(w.srv, f"{q}&_include=*", "_include=* (wildcards)")
    refused(w.srv, f"{q}&_revinclude=*", "_revinclude=*")
    refused(w.srv, f"{q}&_include=Observation:nosuchparam", "an unknown parameter in _include")
    refused(w.srv, f"{q}&_include=Observation:code", "a parameter in _include that is not a reference")
    refused(w.srv, f"{q}&_include=NoSuchType:subject", "an unknown type in _include")
    refused(w.srv, f"{q}&_include=Observation", "_include without a parameter")
    refused(w.srv, f"{q}&_include:nosuchmodifier=Observation:subject", "an unknown _include modifier")
    refused(w.srv, f"/fhir/Patient?_id={w.pA}&_revinclude=Observation:nosuchparam",
            "an unknown parameter in _revinclude")


# ----------------------------------------------------------------------
# Chains and _has
# ----------------------------------------------------------------------


def ids(refs):
    return sorted(r.split("/", 1)[1] for r in refs)


def test_chains(world):
    w = world
    a_obs = sorted([w.oA1, w.oA2, w.oA3])
    ident = quote(f"{w.system}|A", safe=":")
    for q in (f"subject:Patient.identifier={ident}", f"patient.name={w.nameA}", f"subject:Patient.name={w.nameA}",
              f"patient.family={w.nameA.lower()}"):
        m, _, b = search(w.srv, f"/fhir/Observation?{q}")
        assert ids(m) == a_obs, f"Observation?{q}: A's Observations: {m}"
        assert b.get("total") == 3
    m, _, _ = search(w.srv, f"/fhir/Observation?patient.name={w.nameA}&code={LOINC}%7C8867-4")
    assert ids(m) == [w.oA1], f"a chain and a code together: {m}"
    m, _, _ = search(w.srv, f"/fhir/Observation?performer:Patient.name={w.nameB}")
    assert ids(m) == [w.oA3], f"performer:Patient.name: {m}"
    m, _, _ = search(w.srv, f"/fhir/Observation?device:Device.patient=Patient/{w.pC}")
    assert ids(m) == sorted([w.oA2, w.oC1]), f"device:Device.patient (a chain to a reference): {m}"
    m, _, _ = search(w.srv, f"/fhir/Observation?patient.name=Nobody{w.uid}")
    assert m == [], m


@pytest.mark.parametrize("chain,want", [("subject.name={nameA}", ("oA1", "oA2", "oA3")),
                                        ("device.patient=Patient/{pC}", ("oA2", "oC1")),
                                        ("device.identifier={system}%7Cdevice-C", ("oA2", "oC1"))])
def test_untyped_chains_take_the_parameters_target_types(world, chain, want):
    """R4: Observation.subject is Reference(Patient | Group | Device |
    Location) (SearchParameter Observation-subject has those targets), and
    of these only Patient has `name`: subject.name is not ambiguous.
    Observation.device is Reference(Device | DeviceMetric): device.patient
    and device.identifier can only be Device's."""
    w = world
    q = chain.format(nameA=w.nameA, pC=w.pC, system=quote(w.system, safe=":"))
    m, _, _ = search(w.srv, f"/fhir/Observation?{q}")
    assert ids(m) == sorted(getattr(w, o) for o in want), \
        f"Observation?{q} is unambiguous among the R4 target types of the reference: {m}"


@pytest.mark.parametrize("target", ["/fhir/Observation?subject:Organization.name=x",
                                    "/fhir/Observation?device:Observation.code=x",
                                    "/fhir/Observation?_include=Observation:subject:Organization",
                                    "/fhir/Observation?_include=Observation:device:Patient"])
def test_a_type_the_reference_cannot_name_is_refused(world, target):
    """Observation.subject cannot be an Organization, Observation.device
    neither an Observation nor a Patient (their R4 target types)."""
    refused(world.srv, target, "a type modifier outside the reference's R4 target types")


def test_chain_to_a_common_parameter(world):
    """R4 search.html#chaining: any search parameter of the target type,
    _id included."""
    w = world
    m, _, _ = search(w.srv, f"/fhir/Observation?patient._id={w.pA}")
    assert ids(m) == sorted([w.oA1, w.oA2, w.oA3]), f"Observation?patient._id: {m}"


def test_has(world):
    w = world
    q = f"/fhir/Patient?_id={w.pA},{w.pB},{w.pC}"
    m, _, b = search(w.srv, f"{q}&_has:Observation:patient:code=8867-4")
    assert ids(m) == sorted([w.pA, w.pB]), f"_has:Observation:patient:code=8867-4: A and B: {m}"
    assert b.get("total") == 2
    m, _, _ = search(w.srv, f"{q}&_has:Observation:subject:code={LOINC}%7C2708-6")
    assert ids(m) == [w.pB], f"_has:Observation:subject:code=2708-6: {m}"
    m, _, _ = search(w.srv, f"{q}&_has:Observation:performer:code=9279-1")
    assert ids(m) == [w.pB], f"_has:Observation:performer: B is oA3's performer: {m}"
    m, _, _ = search(w.srv, f"{q}&_has:Observation:patient:code=8867-4&_has:Observation:patient:code=9279-1")
    assert ids(m) == [w.pA], f"two _has together (AND): {m}"
    m, _, _ = search(w.srv, f"/fhir/Device?_id={w.dA},{w.dB},{w.dC}&_has:Observation:device:code=9279-1")
    assert ids(m) == sorted([w.dB, w.dC]), f"_has on Device: {m}"


def test_two_level_chains_and_bad_chains_are_refused(world):
    w = world
    refused(w.srv, "/fhir/Observation?patient.organization.name=x", "a two-level chain")
    refused(w.srv, "/fhir/Observation?subject:Patient.general-practitioner.name=x", "a two-level chain")
    refused(w.srv, "/fhir/Observation?device:Device.patient.name=x", "a two-level chain")
    refused(w.srv, "/fhir/Patient?_has:Observation:patient:_has:Observation:subject:code=x", "a nested _has")
    refused(w.srv, "/fhir/Patient?_has:Observation:patient:patient.name=x", "a chain inside _has")
    refused(w.srv, "/fhir/Observation?patient.nosuchparam=x", "a chain to an unknown parameter")
    refused(w.srv, "/fhir/Observation?code.name=x", "a chain on a parameter that is not a reference")
    refused(w.srv, "/fhir/Observation?subject:NoSuchType.name=x", "a chain to an unknown type")
    refused(w.srv, "/fhir/Observation?subject.identifier=x",
            "an ambiguous chain (subject may be a Patient or a Device, both have identifier)")
    refused(w.srv, "/fhir/Patient?_has:Observation:nosuchparam:code=x", "_has with an unknown reference")
    refused(w.srv, "/fhir/Patient?_has:Observation:patient=x", "_has without a parameter")


def test_chains_and_has_reveal_nothing_of_unconsented_patients(world):
    w = world
    # controls: the admin finds them
    assert ids(search(w.srv, f"/fhir/Observation?patient.name={w.nameB}")[0]) == sorted([w.oB1, w.oB2])
    m, _, b = search(w.srv, f"/fhir/Observation?patient.name={w.nameB}", w.clinic1)
    assert m == [] and b.get("total") == 0, (
        f"clinic 1 (Consent of A only) may not read B's Patient: Observation?patient.name=<B's name> "
        f"returns nothing (oB1 is visible through its performer A, but the chain goes through B): {m}")
    m, _, _ = search(w.srv, f"/fhir/Observation?patient.name={w.nameB}", w.clinic2)
    assert ids(m) == [w.oB1], (
        f"clinic 2 reads B's Patient and oB1 (through A's Consent), never oB2: "
        f"Observation?patient.name=<B's name> is oB1 only: {m}")
    m, _, b = search(w.srv, f"/fhir/Observation?patient.name={w.nameB}&_id={w.oB2}", w.clinic1)
    assert m == [] and b.get("total") == 0, f"clinic 1: B's own Observation through a chain: {m}"
    # through a visible Observation (oA3) to an invisible Patient (B) or Device (dB)
    assert ids(search(w.srv, f"/fhir/Observation?performer:Patient.name={w.nameB}")[0]) == [w.oA3]
    m, _, b = search(w.srv, f"/fhir/Observation?performer:Patient.name={w.nameB}", w.clinic1)
    assert m == [] and b.get("total") == 0, (
        f"clinic 1 may read oA3 but not B's Patient: a chain through B's Patient must not match (it "
        f"would reveal B's name): {m}")
    ident = quote(f"{w.system}|B", safe=":")
    m, _, _ = search(w.srv, f"/fhir/Observation?performer:Patient.identifier={ident}", w.clinic1)
    assert m == [], f"clinic 1: a chain through B's identifier must not match: {m}"
    assert ids(search(w.srv, f"/fhir/Observation?device:Device.patient=Patient/{w.pB}")[0]) == [w.oA3]
    m, _, _ = search(w.srv, f"/fhir/Observation?device:Device.patient=Patient/{w.pB}", w.clinic1)
    assert m == [], f"clinic 1 may not read dB: a chain through dB must not match: {m}"
    m, _, _ = search(w.srv, f"/fhir/Observation?device:Device.identifier={quote(w.system, safe=':')}%7Cdevice-B",
                     w.clinic1)
    assert m == [], f"clinic 1 may not read dB: a chain through dB's identifier must not match: {m}"
    # _has: B has the only 2708-6 (oB2, which neither clinic may read)
    q = f"/fhir/Patient?_id={w.pA},{w.pB},{w.pC}&_has:Observation:patient:code=2708-6"
    assert ids(search(w.srv, q)[0]) == [w.pB], "control: the admin finds B"
    for token, who in ((w.clinic1, "clinic 1"), (w.clinic2, "clinic 2, which may read B's Patient")):
        m, _, b = search(w.srv, q, token)
        assert m == [] and b.get("total") == 0, (
            f"{who}: Patient?_has:Observation:patient:code=2708-6 must not reveal B (nor that B has such an "
            f"Observation, which the caller may not read): {m}, total {b.get('total')}")
        m, _, b = search(w.srv, q + "&_summary=count", token)
        assert b.get("total") == 0, f"{who}: _summary=count must not count B: {b.get('total')}"
    # _has through a visible Observation is fine: oA3 names B as performer
    m, _, _ = search(w.srv, f"/fhir/Patient?_id={w.pB}&_has:Observation:performer:code=9279-1", w.clinic2)
    assert ids(m) == [w.pB], f"clinic 2 reads B's Patient and oA3: B matches: {m}"
    m, _, _ = search(w.srv, f"/fhir/Patient?_id={w.pB}&_has:Observation:performer:code=9279-1", w.clinic1)
    assert m == [], f"clinic 1 may not read B's Patient: {m}"


def test_iterate_includes_over_many_included_resources(world):
    """Many first-level includes, and two :iterate includes over them: each
    iterate include applies (none is dropped), each resource once. (A page
    whose includes outgrow the list they are kept in must not read stale
    entries: run under ASan this was a use-after-free.)"""
    srv, uid = world.srv, uuid.uuid4().hex[:6]
    n = 20
    res = []
    for i in range(n):
        org, doc, pat = f"io{uid}{i}", f"ip{uid}{i}", f"it{uid}{i}"
        res += [{"resourceType": "Organization", "id": org, "name": f"Org {i}"},
                {"resourceType": "Practitioner", "id": doc},
                {"resourceType": "Patient", "id": pat,
                 "managingOrganization": {"reference": f"Organization/{org}"},
                 "generalPractitioner": [{"reference": f"Practitioner/{doc}"}]},
                {"resourceType": "Observation", "id": f"iq{uid}{i}", "status": "final",
                 "code": {"coding": [{"system": "http://example.org/iter", "code": uid}]},
                 "subject": {"reference": f"Patient/{pat}"}}]
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                        for r in res]}
    assert call(srv, "POST", "/fhir", body=bundle).status == 200
    m, inc, _ = search(srv, f"/fhir/Observation?code=http://example.org/iter%7C{uid}&_count=50"
                            "&_include=Observation:subject&_include:iterate=Patient:organization"
                            "&_include:iterate=Patient:general-practitioner")
    assert len(m) == n
    kinds = sorted(r.split("/")[0] for r in inc)
    assert kinds.count("Patient") == n and kinds.count("Organization") == n, kinds
    assert kinds.count("Practitioner") == n, f"the second :iterate include was dropped: {kinds}"
