"""GET /fhir/Patient/{id}/$everything against the real binary (R4
OperationDefinition Patient-everything; docs/api.md): the Patient first,
then its compartment, the shared resources they reference as includes;
who sees what (admin, the patient, a clinic with and without a Consent);
_type, _since, start/end; keyset pages with _count through a snapshot that
writes do not disturb; sealed cursors; the accounting of disclosures."""

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

import harness

LOINC = "http://loinc.org"
HR, WEIGHT = "8867-4", "29463-7"


@pytest.fixture(scope="module")
def srv(settings):
    root = Path(tempfile.mkdtemp(prefix="vitalog-everything-"))
    with harness.serving(settings.binary, root) as server:
        server.root = root
        server.binary = settings.binary
        yield server
    shutil.rmtree(root, ignore_errors=True)


def auth(server, token=None):
    return {"Authorization": f"Bearer {token or server.admin_token}",
            "Accept": "application/fhir+json"}


def put(server, path, body, token=None):
    r = requests.put(server.base + path, data=json.dumps(body),
                     headers={**auth(server, token), "Content-Type": "application/fhir+json"},
                     timeout=60)
    assert r.status_code in (200, 201), r.text[:400]
    return r.json()


def post(server, path, body, token=None):
    r = requests.post(server.base + path, data=json.dumps(body),
                      headers={**auth(server, token), "Content-Type": "application/fhir+json"},
                      timeout=60)
    assert r.status_code == 201, r.text[:400]
    return r.json()


def get(server, url, token=None):
    """GET a path under the server, or a full URL (a link)."""
    if not url.startswith("http"):
        url = server.base + url
    return requests.get(url, headers=auth(server, token), timeout=60)


def everything(server, pid, query="", token=None, status=200):
    r = get(server, f"/fhir/Patient/{pid}/$everything" + (f"?{query}" if query else ""), token)
    assert r.status_code == status, r.text[:600]
    return r.json()


def new_token(server, role, subject):
    p = subprocess.run([str(server.binary), "token", "create", "--data", str(server.root),
                        "--role", role, "--subject", subject], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def observation(pid, code, when, performer=None):
    o = {"resourceType": "Observation", "status": "final",
         "code": {"coding": [{"system": LOINC, "code": code}]},
         "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": when,
         "valueQuantity": {"value": 70 if code == HR else 80.5,
                           "unit": "/min" if code == HR else "kg",
                           "system": "http://unitsofmeasure.org",
                           "code": "/min" if code == HR else "kg"}}
    if performer:
        o["performer"] = [{"reference": performer}]
    return o


def consent(cid, pid, actor, code=None):
    prov = {"type": "permit",
            "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                            "code": "PRCP"}]},
                       "reference": {"reference": actor}}],
            "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                    "code": "access"}]}]}
    if code:
        prov["code"] = [{"coding": [{"system": LOINC, "code": code}]}]
    return {"resourceType": "Consent", "id": cid, "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                                  "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": {"reference": f"Patient/{pid}"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                       "code": "OPTIN"}]},
            "provision": prov}


def ref(entry):
    return f"{entry['resource']['resourceType']}/{entry['resource']['id']}"


def matches(bundle, skip_audit=True):
    """The match entries as Type/id, in order (AuditEvents, which every
    disclosure adds to the compartment, left out unless asked)."""
    return [ref(e) for e in bundle.get("entry", []) if e["search"]["mode"] == "match"
            and (not skip_audit or e["resource"]["resourceType"] != "AuditEvent")]


def includes(bundle):
    return [ref(e) for e in bundle.get("entry", []) if e["search"]["mode"] == "include"]


def links(bundle):
    return {l["relation"]: l["url"] for l in bundle.get("link", [])}


def all_pages(server, first_url, token=None, relation="next", limit=200):
    """The Bundles of first_url and of every `relation` link after it."""
    pages, url = [], first_url
    while url:
        r = get(server, url, token)
        assert r.status_code == 200, r.text[:400]
        pages.append(r.json())
        url = links(pages[-1]).get(relation)
        assert len(pages) < limit, "paging does not end"
    return pages


def assert_no_foreign(bundle, foreign):
    """No entry is, or names, a resource of the patient `foreign`."""
    for e in bundle.get("entry", []):
        text = json.dumps(e["resource"])
        assert f"Patient/{foreign}\"" not in text and f"Patient/{foreign}/" not in text, e
        assert ref(e) != f"Patient/{foreign}"


@pytest.fixture(scope="module")
def world(srv):
    """Patient a (with an Organization), its Device, heart rates (one by a
    Practitioner) and weights, a clinic's Consent for heart rates only;
    patient b with an Observation of its own."""
    n = uuid.uuid4().hex[:6]
    w = {"a": f"eva{n}", "b": f"evb{n}", "org": f"org{n}", "pr": f"pr{n}",
         "clinic": f"Organization/cl{n}", "other_clinic": f"Organization/cn{n}"}
    put(srv, f"/fhir/Organization/{w['org']}", {"resourceType": "Organization", "id": w["org"],
                                                 "name": "Ward"})
    put(srv, f"/fhir/Practitioner/{w['pr']}", {"resourceType": "Practitioner", "id": w["pr"]})
    put(srv, f"/fhir/Patient/{w['a']}", {"resourceType": "Patient", "id": w["a"],
                                         "managingOrganization": {"reference": f"Organization/{w['org']}"}})
    put(srv, f"/fhir/Patient/{w['b']}", {"resourceType": "Patient", "id": w["b"]})
    order = []  # a's members in the order they were written
    dev = post(srv, "/fhir/Device", {"resourceType": "Device", "patient": {"reference": f"Patient/{w['a']}"}})
    order.append(f"Device/{dev['id']}")
    w["hr"], w["weight"] = [], []
    for i, when in enumerate(["2023-03-01T08:00:00Z", "2024-05-06T10:00:00Z", "2024-07-01T10:00:00Z"]):
        o = post(srv, "/fhir/Observation",
                 observation(w["a"], HR, when, f"Practitioner/{w['pr']}" if i == 1 else None))
        w["hr"].append(f"Observation/{o['id']}")
        order.append(w["hr"][-1])
        o = post(srv, "/fhir/Observation", observation(w["a"], WEIGHT, when))
        w["weight"].append(f"Observation/{o['id']}")
        order.append(w["weight"][-1])
    ob = post(srv, "/fhir/Observation", observation(w["b"], HR, "2024-05-06T10:00:00Z"))
    w["b_obs"] = f"Observation/{ob['id']}"
    cid = f"cons{n}"
    put(srv, f"/fhir/Consent/{cid}", consent(cid, w["a"], w["clinic"], code=HR))
    order.append(f"Consent/{cid}")
    w["consent"] = f"Consent/{cid}"
    w["order"] = order
    w["pa"] = new_token(srv, "patient", f"Patient/{w['a']}")
    w["pb"] = new_token(srv, "patient", f"Patient/{w['b']}")
    w["clinic_token"] = new_token(srv, "clinic", w["clinic"])
    w["other_clinic_token"] = new_token(srv, "clinic", w["other_clinic"])
    return w


def own_audit_events(srv, w):
    """The AuditEvents in a's compartment, read by a (which discloses nothing)."""
    r = get(srv, f"/fhir/AuditEvent?patient=Patient/{w['a']}&_count=1000", w["pa"])
    assert r.status_code == 200, r.text[:300]
    return [e["resource"] for e in r.json().get("entry", [])]


# ----------------------------------------------------------------------
# Content and access
# ----------------------------------------------------------------------


def test_admin_gets_the_patient_first_then_everything(srv, world):
    b = everything(srv, world["a"], "_count=1000")
    assert b["resourceType"] == "Bundle" and b["type"] == "searchset"
    assert b["entry"][0]["fullUrl"] == f"{srv.base}/fhir/Patient/{world['a']}"
    assert b["entry"][0]["search"]["mode"] == "match"
    got = matches(b)
    assert got == [f"Patient/{world['a']}"] + world["order"]  # the order of writing
    # the total counts the matches (AuditEvents of earlier reads included)
    assert b["total"] == len(matches(b, skip_audit=False))
    # the shared resources they reference come once, as includes
    assert sorted(includes(b)) == sorted([f"Organization/{world['org']}",
                                          f"Practitioner/{world['pr']}"])
    for e in b["entry"]:
        assert e["fullUrl"] == f"{srv.base}/fhir/{ref(e)}"
    assert_no_foreign(b, world["b"])
    assert world["b_obs"] not in got
    self_link = links(b)["self"]
    assert self_link.endswith(f"/fhir/Patient/{world['a']}/$everything?_count=1000")
    assert "next" not in links(b) and "previous" not in links(b)


def test_the_patient_reads_their_own_record_and_nothing_is_audited(srv, world):
    before = len(own_audit_events(srv, world))
    b = everything(srv, world["a"], "_count=1000", token=world["pa"])
    assert matches(b) == [f"Patient/{world['a']}"] + world["order"]
    assert sorted(includes(b)) == sorted([f"Organization/{world['org']}",
                                          f"Practitioner/{world['pr']}"])
    assert_no_foreign(b, world["b"])
    assert len(own_audit_events(srv, world)) == before
    # another patient's record is not there for them, nor theirs for the other
    everything(srv, world["b"], token=world["pa"], status=404)
    everything(srv, world["a"], token=world["pb"], status=404)
    b = everything(srv, world["b"], "_count=1000", token=world["pb"])
    assert matches(b) == [f"Patient/{world['b']}", world["b_obs"]]
    assert_no_foreign(b, world["a"])


def test_a_clinic_without_consent_gets_404(srv, world):
    before = len(own_audit_events(srv, world))
    r = get(srv, f"/fhir/Patient/{world['a']}/$everything", world["other_clinic_token"])
    assert r.status_code == 404, r.text[:300]
    assert r.json()["resourceType"] == "OperationOutcome"
    # exactly what a patient that does not exist gets
    r2 = get(srv, "/fhir/Patient/no-such-patient/$everything", world["other_clinic_token"])
    assert r2.status_code == 404
    assert len(own_audit_events(srv, world)) == before


def test_a_clinic_with_a_consent_for_one_code_gets_only_those_and_is_audited(srv, world):
    before = own_audit_events(srv, world)
    b = everything(srv, world["a"], "_count=1000", token=world["clinic_token"])
    got = matches(b)
    # the heart rates the Consent permits, and the Consent that names it;
    # neither the Patient itself, nor weights, nor the Device
    assert [r for r in got if r.startswith("Observation/")] == world["hr"]
    assert sorted(got) == sorted(world["hr"] + [world["consent"]])
    assert includes(b) == [f"Practitioner/{world['pr']}"]  # the performer of an HR
    assert b["total"] == len(matches(b, skip_audit=False))
    assert_no_foreign(b, world["b"])
    # the disclosure is accounted for before the answer: one AuditEvent more
    after = own_audit_events(srv, world)
    new = [e for e in after if e["id"] not in {x["id"] for x in before}]
    assert len(new) == 1, new
    ev = new[0]
    assert ev["agent"][0]["who"] == {"reference": world["clinic"]}
    assert ev["subtype"][0]["code"] == "search-type"
    whats = {e.get("what", {}).get("reference") for e in ev["entity"]}
    assert f"Patient/{world['a']}" in whats and world["consent"] in whats
    for o in world["hr"]:
        assert f"{o}/_history/1" in whats
    for o in world["weight"]:
        assert f"{o}/_history/1" not in whats
    assert any(e.get("query") for e in ev["entity"])


def test_unknown_and_deleted_patients(srv, world):
    r = get(srv, "/fhir/Patient/nope-nope/$everything")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    pid = f"gone{uuid.uuid4().hex[:6]}"
    put(srv, f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid})
    assert requests.delete(f"{srv.base}/fhir/Patient/{pid}", headers=auth(srv), timeout=60).status_code == 204
    r = get(srv, f"/fhir/Patient/{pid}/$everything")
    assert r.status_code == 410, r.text[:300]
    assert r.json()["issue"][0]["code"] == "deleted"


# ----------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------


def test_type(srv, world):
    b = everything(srv, world["a"], "_type=Observation", token=world["pa"])
    assert matches(b) == [r for r in world["order"] if r.startswith("Observation/")]
    assert includes(b) == []  # a Practitioner is not of the types asked for
    b = everything(srv, world["a"], "_type=Device,Patient&_type=Practitioner,Observation",
                   token=world["pa"])
    assert matches(b) == [f"Patient/{world['a']}"] + [r for r in world["order"]
                                                       if not r.startswith("Consent/")]
    assert includes(b) == [f"Practitioner/{world['pr']}"]
    # the canonical query: the types in the server's order, once each
    assert "_type=Observation,Patient,Device,Practitioner&" in links(b)["self"]
    b = everything(srv, world["a"], "_type=Patient", token=world["pa"])
    assert matches(b) == [f"Patient/{world['a']}"] and includes(b) == []
    assert b["total"] == 1
    for bad in ("Foo", "Encounter", "Observation,", "observation"):
        r = get(srv, f"/fhir/Patient/{world['a']}/$everything?_type={bad}", world["pa"])
        assert r.status_code == 400, (bad, r.text[:300])
        assert r.json()["resourceType"] == "OperationOutcome"


def test_since(srv, world):
    pid = f"evs{uuid.uuid4().hex[:6]}"
    put(srv, f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid})
    tok = new_token(srv, "patient", f"Patient/{pid}")
    old = post(srv, "/fhir/Observation", observation(pid, HR, "2024-01-01T00:00:00Z"))
    # the next write in a later millisecond than this one's lastUpdated
    # (the server's clock is this machine's)
    t = datetime.fromisoformat(old["meta"]["lastUpdated"].replace("Z", "+00:00")).timestamp()
    while time.time() < t + 0.002:
        time.sleep(0.001)
    new = post(srv, "/fhir/Observation", observation(pid, HR, "2024-01-02T00:00:00Z"))
    since = new["meta"]["lastUpdated"]
    assert since > old["meta"]["lastUpdated"]
    b = everything(srv, pid, f"_since={since}", token=tok)
    assert matches(b) == [f"Observation/{new['id']}"]  # lastUpdated >= _since
    assert b["total"] == 1
    b = everything(srv, pid, "_since=2000-01-01T00:00:00Z", token=tok)
    assert matches(b) == [f"Patient/{pid}", f"Observation/{old['id']}", f"Observation/{new['id']}"]
    for bad in ("2024", "2024-01-01", "yesterday"):
        r = get(srv, f"/fhir/Patient/{pid}/$everything?_since={bad}", tok)
        assert r.status_code == 400, (bad, r.text[:300])


def test_start_and_end_are_care_dates(srv, world):
    hr_2024 = world["hr"][1:] + world["weight"][1:]
    b = everything(srv, world["a"], "start=2024-01-01&end=2024-12-31&_type=Observation",
                   token=world["pa"])
    assert sorted(matches(b)) == sorted(hr_2024)
    # records without a care time are not filtered: the Patient, the Device
    b = everything(srv, world["a"], "start=2024-07&_count=1000", token=world["pa"])
    assert matches(b) == [f"Patient/{world['a']}", world["order"][0], world["hr"][2],
                          world["weight"][2], world["consent"]]
    b = everything(srv, world["a"], "end=2023&_type=Observation", token=world["pa"])
    assert matches(b) == [world["hr"][0], world["weight"][0]]
    for bad in ("start=2024-13", "start=2024-05-06T10:00:00Z", "start=2025&end=2024"):
        r = get(srv, f"/fhir/Patient/{world['a']}/$everything?{bad}", world["pa"])
        assert r.status_code == 400, (bad, r.text[:300])


@pytest.mark.parametrize("query", ["_count=0", "_count=-1", "_count=abc", "_count=1.5", "foo=1",
                                   "_sort=_id", "_since=2024-01-01T00:00:00Z&_since=2024-01-01T00:00:00Z",
                                   "_summary=count", "_cursor="])
def test_bad_parameters(srv, world, query):
    r = get(srv, f"/fhir/Patient/{world['a']}/$everything?{query}", world["pa"])
    assert r.status_code == 400, r.text[:300]
    assert r.json()["resourceType"] == "OperationOutcome"


def test_count_is_clamped(srv, world):
    b = everything(srv, world["a"], "_count=100000", token=world["pa"])
    assert "_count=1000" in links(b)["self"]


# ----------------------------------------------------------------------
# Pages
# ----------------------------------------------------------------------


def test_pages_of_two_give_each_entry_once_both_ways(srv, world):
    whole = everything(srv, world["a"], "_count=1000", token=world["pa"])
    want = [ref(e) for e in whole["entry"] if e["search"]["mode"] == "match"]
    pages = all_pages(srv, f"/fhir/Patient/{world['a']}/$everything?_count=2", world["pa"])
    got = [ref(e) for p in pages for e in p.get("entry", []) if e["search"]["mode"] == "match"]
    assert got == want  # each once, in order, the Patient first
    assert len(pages) == (len(want) + 1) // 2
    for i, p in enumerate(pages):
        assert p["total"] == len(want)
        assert len(matches(p, skip_audit=False)) == 2 or i == len(pages) - 1
        assert ("previous" in links(p)) == (i > 0)
        assert ("next" in links(p)) == (i < len(pages) - 1)
        assert "first" in links(p) and "last" in links(p)
    # the previous links lead back through the same pages
    back = all_pages(srv, links(pages[-1])["previous"], world["pa"], relation="previous")
    assert [matches(p, False) for p in back] == [matches(p, False) for p in pages[-2::-1]]
    # first is the first page, last the last _count entries
    assert matches(get(srv, links(pages[-1])["first"], world["pa"]).json(), False) == want[:2]
    assert matches(get(srv, links(pages[0])["last"], world["pa"]).json(), False) == want[-2:]
    # and a page read again is the same page
    again = get(srv, links(pages[0])["next"], world["pa"]).json()
    assert matches(again, False) == matches(pages[1], False)


def test_writes_between_pages_neither_duplicate_nor_skip(srv, world):
    pid = f"evw{uuid.uuid4().hex[:6]}"
    put(srv, f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid})
    tok = new_token(srv, "patient", f"Patient/{pid}")
    obs = [post(srv, "/fhir/Observation", observation(pid, HR, f"2024-02-0{i}T00:00:00Z"))
           for i in range(1, 7)]
    snapshot = everything(srv, pid, "_count=1000", token=tok)
    want = [(ref(e), e["resource"]["meta"]["versionId"]) for e in snapshot["entry"]]
    first = everything(srv, pid, "_count=2", token=tok)
    seen = [(ref(e), e["resource"]["meta"]["versionId"]) for e in first["entry"]]
    assert [r for r, _ in seen] == [f"Patient/{pid}", f"Observation/{obs[0]['id']}"]
    # while the client pages: an update of a listed entry and of one to come,
    # a new Observation, a delete of one to come, the Patient updated
    put(srv, f"/fhir/Observation/{obs[0]['id']}", dict(obs[0], status="amended"))
    put(srv, f"/fhir/Observation/{obs[3]['id']}", dict(obs[3], status="amended"))
    created = post(srv, "/fhir/Observation", observation(pid, HR, "2024-03-01T00:00:00Z"))
    assert requests.delete(f"{srv.base}/fhir/Observation/{obs[4]['id']}", headers=auth(srv),
                           timeout=60).status_code == 204
    put(srv, f"/fhir/Patient/{pid}", {"resourceType": "Patient", "id": pid, "active": True})
    for p in all_pages(srv, links(first)["next"], tok):
        assert p["total"] == len(want)
        seen += [(ref(e), e["resource"]["meta"]["versionId"]) for e in p["entry"]]
    assert seen == want  # the entries as they were at the first page
    # a new $everything sees the writes
    now = everything(srv, pid, "_count=1000", token=tok)
    refs = matches(now)
    assert f"Observation/{created['id']}" in refs and f"Observation/{obs[4]['id']}" not in refs
    assert now["entry"][0]["resource"]["meta"]["versionId"] == "2"
    # the updated ones come where their new versions were written
    assert refs[-3:] == [f"Observation/{obs[0]['id']}", f"Observation/{obs[3]['id']}",
                         f"Observation/{created['id']}"]


def cursor_of(url):
    return parse_qs(urlsplit(url).query)["_cursor"][0]


def with_cursor(url, cursor):
    return url.replace(cursor_of(url), cursor)


def test_cursors_are_sealed(srv, world):
    b = everything(srv, world["a"], "_count=2", token=world["pa"])
    nxt = links(b)["next"]
    assert get(srv, nxt, world["pa"]).status_code == 200
    c = cursor_of(nxt)
    # one character changed, anywhere
    for i in (0, len(c) // 2, len(c) - 1):
        flipped = c[:i] + ("A" if c[i] != "A" else "B") + c[i + 1:]
        r = get(srv, with_cursor(nxt, flipped), world["pa"])
        assert r.status_code == 400, r.text[:300]
        assert r.json()["resourceType"] == "OperationOutcome"
    for bad in ("", "garbage", c[:-2], c + "AA", "%00"):
        r = get(srv, f"/fhir/Patient/{world['a']}/$everything?_count=2&_cursor={bad}", world["pa"])
        assert r.status_code == 400, (bad, r.text[:300])
    # a cursor of another query: another _count, _type, patient
    for other in (nxt.replace("_count=2", "_count=3"),
                  nxt.replace("$everything?", "$everything?_type=Observation&"),
                  nxt.replace(f"/Patient/{world['a']}/", f"/Patient/{world['b']}/")):
        r = get(srv, other, world["pa"] if f"/Patient/{world['a']}/" in other else world["pb"])
        assert r.status_code == 400, r.text[:300]
    r = get(srv, nxt.replace(f"/Patient/{world['a']}/", f"/Patient/{world['b']}/"))  # admin
    assert r.status_code == 400
    # another caller's cursor: the admin's is not the patient's
    r = get(srv, nxt)  # admin token
    assert r.status_code == 400, r.text[:300]


def test_capability_statement_lists_everything(srv):
    r = requests.get(srv.base + "/fhir/metadata", timeout=60)
    assert r.status_code == 200
    assert "$everything" in r.text
