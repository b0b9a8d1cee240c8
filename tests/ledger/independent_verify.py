#!/usr/bin/python3
"""Independent verifier of a vitalog ledger export, written from docs/ledger.md
alone (no vitalog code was read). Standard library plus PyNaCl (Debian
python3-nacl) for Ed25519; run it with Debian's /usr/bin/python3.

usage:
  independent_verify.py --key VKEY_OR_FILE [--key ...] EXPORT [--records RECORDS]
  independent_verify.py --selftest

EXPORT is the NDJSON of `GET /ledger/export` (docs/ledger.md section 6);
RECORDS is the output of `vitalog export --data DIR --records`.
Implements section 7: canonical form of every entry line, index sequence,
prev chain, RFC 9162 tree (compact range), C2SP signed-note checkpoints with
key id check and Ed25519, origin/size/root, key rotation, final coverage, and
the records' commitments. --selftest recomputes the worked example of
section 8 and checks the hashing and note code against public vectors.

Exit status: 0 verified; 1 verification failed (the message names the first
bad entry index or line); 2 usage or I/O error.
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import sys

try:
    import nacl.exceptions
    import nacl.signing
except ImportError:  # pragma: no cover
    sys.stderr.write("independent_verify.py: PyNaCl missing; run with /usr/bin/python3 "
                     "(Debian python3-nacl)\n")
    sys.exit(2)

ZERO_HASH_HEX = "0" * 64
EM_DASH = "\u2014"


class VerifyError(Exception):
    pass


# ---------------------------------------------------------------- hashing ---

def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(line):
    """Section 2/3: SHA-256(0x00 || line), the line without its newline."""
    return sha256(b"\x00" + line)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


class CompactRange:
    """RFC 9162 tree of the leaves appended so far, in O(log n) memory: the
    perfect subtrees of the binary decomposition of n, largest first."""

    def __init__(self):
        self.size = 0
        self.stack = []  # [(subtree size, hash)]

    def append(self, h):
        self.stack.append((1, h))
        self.size += 1
        while len(self.stack) >= 2 and self.stack[-1][0] == self.stack[-2][0]:
            (n, r) = self.stack.pop()
            (_, l) = self.stack.pop()
            self.stack.append((2 * n, node_hash(l, r)))

    def root(self):
        if not self.stack:
            return sha256(b"")
        r = self.stack[-1][1]
        for (_, h) in reversed(self.stack[:-1]):
            r = node_hash(h, r)
        return r


def mth(leaves):
    """RFC 9162 2.1.1 MTH, recursive, used only by the self-test to cross-check
    CompactRange."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


# ------------------------------------------------------------------- keys ---

def b64decode_strict(s, what):
    if not isinstance(s, str) or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s) or len(s) % 4:
        raise VerifyError("%s: not standard padded base64: %r" % (what, s))
    try:
        b = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as e:
        raise VerifyError("%s: bad base64: %s" % (what, e))
    if base64.b64encode(b).decode("ascii") != s:
        raise VerifyError("%s: non-canonical base64: %r" % (what, s))
    return b


def valid_key_name(name):
    # C2SP signed-note: non-empty, no Unicode spaces, no plus signs.
    return bool(name) and "+" not in name and not any(c.isspace() for c in name) \
        and all(ord(c) >= 0x20 for c in name)


def key_id(name, pub):
    """Section 5: first 4 bytes (big-endian) of SHA-256(name || 0x0A || 0x01 || pub)."""
    return sha256(name.encode("utf-8") + b"\x0a\x01" + pub)[:4]


class Key:
    def __init__(self, vkey):
        """Parses a C2SP verifier key <name>+<8 hex id>+<base64(0x01 || pub)>."""
        self.vkey = vkey
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise VerifyError("verifier key %r: want name+id+key" % vkey)
        name, hexid, b64 = parts
        if not valid_key_name(name):
            raise VerifyError("verifier key %r: bad key name" % vkey)
        if not re.fullmatch(r"[0-9a-f]{8}", hexid):
            raise VerifyError("verifier key %r: key id is not 8 lowercase hex" % vkey)
        raw = b64decode_strict(b64, "verifier key %r" % vkey)
        if len(raw) != 33 or raw[0] != 0x01:
            raise VerifyError("verifier key %r: not 0x01 || 32-byte Ed25519 key" % vkey)
        self.name = name
        self.pub = raw[1:]
        self.id = bytes.fromhex(hexid)
        if key_id(name, self.pub) != self.id:
            raise VerifyError("verifier key %r: key id %s != computed %s"
                              % (vkey, hexid, key_id(name, self.pub).hex()))
        self.verify_key = nacl.signing.VerifyKey(self.pub)

    def verify(self, msg, sig):
        if len(sig) != 64:
            return False
        try:
            self.verify_key.verify(msg, sig)
            return True
        except nacl.exceptions.BadSignatureError:
            return False

    def __repr__(self):
        return self.vkey


# ------------------------------------------------------------------ notes ---

def open_note(msg, keys):
    """C2SP signed-note: returns (text, list of trusted Keys whose signature
    verified). Signatures by unknown keys are ignored; a signature that claims a
    trusted key's name and id but does not verify rejects the note; at least one
    trusted signature must verify."""
    if not isinstance(msg, bytes):
        msg = msg.encode("utf-8")
    try:
        s = msg.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("note is not UTF-8")
    for c in s:
        if ord(c) < 0x20 and c != "\n":
            raise VerifyError("note has a control character %r" % c)
    split = msg.rfind(b"\n\n")
    if split < 0:
        raise VerifyError("note has no blank line before its signatures")
    text, sigs = msg[:split + 1], msg[split + 2:]
    if not sigs or not sigs.endswith(b"\n"):
        raise VerifyError("note signature block is empty or does not end with a newline")
    verified = []
    for raw in sigs[:-1].split(b"\n"):
        line = raw.decode("utf-8")
        prefix = EM_DASH + " "
        if not line.startswith(prefix):
            raise VerifyError("note signature line %r does not start with an em dash and a space" % line)
        rest = line[len(prefix):]
        if " " not in rest:
            raise VerifyError("note signature line %r has no key name / signature separator" % line)
        name, b64 = rest.split(" ", 1)
        if not valid_key_name(name):
            raise VerifyError("note signature line %r: bad key name" % line)
        blob = b64decode_strict(b64, "note signature by %s" % name)
        if len(blob) < 5:
            raise VerifyError("note signature by %s is too short" % name)
        kid, sig = blob[:4], blob[4:]
        for k in keys:
            if k.name == name and k.id == kid:
                if not k.verify(text, sig):
                    raise VerifyError("note signature by trusted key %s does not verify" % k.vkey)
                if k not in verified:
                    verified.append(k)
    if not verified:
        raise VerifyError("note has no valid signature by a trusted key (trusted: %s)"
                          % ", ".join(k.vkey for k in keys))
    return text, verified


def parse_checkpoint_text(text):
    """Section 4 / C2SP tlog-checkpoint: origin, size, base64 root, no extensions."""
    s = text.decode("utf-8")
    if not s.endswith("\n"):
        raise VerifyError("checkpoint text does not end with a newline")
    lines = s[:-1].split("\n")
    if len(lines) != 3:
        raise VerifyError("checkpoint text has %d lines, want 3 (origin, size, root; no extension lines)"
                          % len(lines))
    origin, size_s, root_s = lines
    if not origin:
        raise VerifyError("checkpoint origin is empty")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s):
        raise VerifyError("checkpoint size %r is not a canonical decimal" % size_s)
    root = b64decode_strict(root_s, "checkpoint root")
    if len(root) != 32:
        raise VerifyError("checkpoint root is %d bytes, want 32" % len(root))
    return origin, int(size_s), root


# ---------------------------------------------------------------- entries ---

TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
# FHIR: resource type names are letters; ids are [A-Za-z0-9-.]{1,64}; vitalog
# versions are 1, 2, ... (section 8).
REF_RE = re.compile(r"[A-Z][A-Za-z]*/[A-Za-z0-9\-.]{1,64}/_history/[1-9][0-9]*")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
ROTATION_PREFIX = b"vitalog key rotation\n"


def jstr(s):
    return json.dumps(s, ensure_ascii=False)


def canonical_entry(e):
    """Re-serializes a parsed entry in the exact member order of section 2."""
    if e.get("kind") == "key-rotation":
        order = ("index", "time", "kind", "key", "signature", "prev")
    else:
        order = ("index", "time", "kind", "ref", "commitment", "prev")
    parts = []
    for m in order:
        if m not in e:
            raise VerifyError("member %r is missing" % m)
        v = e[m]
        if m == "index":
            if type(v) is not int or v < 0:
                raise VerifyError("index is not a non-negative integer")
            parts.append('"index":%d' % v)
        else:
            if not isinstance(v, str):
                raise VerifyError("member %r is not a string" % m)
            parts.append("%s:%s" % (jstr(m), jstr(v)))
    if set(e) != set(order):
        raise VerifyError("unexpected members %s" % sorted(set(e) - set(order)))
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def check_entry_values(e):
    t = e["time"]
    if not TIME_RE.fullmatch(t):
        raise VerifyError("time %r is not YYYY-MM-DDThh:mm:ss.sssZ" % t)
    try:
        datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        raise VerifyError("time %r is not a valid date and time" % t)
    kind = e["kind"]
    if kind == "key-rotation":
        Key(e["key"])  # must parse, with a correct key id
        b64decode_strict(e["signature"], "rotation signature")
    elif kind in ("create", "update", "delete", "consent.grant", "consent.revoke",
                  "access.disclose"):
        if not REF_RE.fullmatch(e["ref"]):
            raise VerifyError("ref %r is not Type/id/_history/version" % e["ref"])
        if not HEX64_RE.fullmatch(e["commitment"]):
            raise VerifyError("commitment is not 64 lowercase hex")
    else:
        raise VerifyError("unknown kind %r" % kind)
    if not HEX64_RE.fullmatch(e["prev"]):
        raise VerifyError("prev is not 64 lowercase hex")


def parse_entry(line):
    try:
        e = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as ex:
        raise VerifyError("not JSON: %s" % ex)
    if not isinstance(e, dict):
        raise VerifyError("not a JSON object")
    canon = canonical_entry(e)
    if canon != line:
        raise VerifyError("not in canonical form (section 2):\n  got  %s\n  want %s"
                          % (line.decode("utf-8", "replace"), canon.decode("utf-8")))
    check_entry_values(e)
    return e


# ----------------------------------------------------------------- export ---

class Verifier:
    def __init__(self, keys, log=None):
        self.keys = list(keys)  # keys that must sign the next checkpoint
        self.tree = CompactRange()
        self.prev = bytes(32)
        self.checkpoints = 0
        self.last_cp_size = None
        self.last_entry_line = 0
        self.rotations = 0
        self.refs = {}  # ref -> (index, kind, commitment)
        self.last = None  # the previous entry (for consent entries)
        self.log = log or (lambda s: None)

    def where(self):
        n = self.tree.size
        return "after entry index %d" % (n - 1) if n else "before entry index 0"

    def entry(self, lineno, line):
        idx = self.tree.size
        try:
            e = parse_entry(line)
        except VerifyError as ex:
            raise VerifyError("entry index %d (line %d): %s" % (idx, lineno, ex))
        if e["index"] != idx:
            raise VerifyError("entry index %d (line %d): line has index %d, expected %d"
                              % (idx, lineno, e["index"], idx))
        if e["prev"] != self.prev.hex():
            if idx == 0:
                raise VerifyError("entry index 0 (line %d): prev %s is not 64 zeros"
                                  % (lineno, e["prev"]))
            raise VerifyError("entry index %d (line %d) was altered, or the prev of its successor: "
                              "its entry hash is %s, but entry index %d (line %d) has prev %s"
                              % (idx - 1, self.last_entry_line, self.prev.hex(), idx, lineno,
                                 e["prev"]))
        if e["kind"] == "key-rotation":
            new = Key(e["key"])
            sig = base64.b64decode(e["signature"])
            msg = ROTATION_PREFIX + e["key"].encode("utf-8") + b"\n"
            signer = next((k for k in self.keys if k.verify(msg, sig)), None)
            if signer is None:
                raise VerifyError("entry index %d (line %d): key rotation to %s is not signed by a "
                                  "trusted key (%s)" % (idx, lineno, e["key"],
                                                        ", ".join(k.vkey for k in self.keys)))
            self.log("entry %d: key rotation %s -> %s" % (idx, signer.vkey, new.vkey))
            self.keys = [new]
            self.rotations += 1
        elif e["kind"].startswith("consent."):
            # section 2.1: right after the version's own entry (a grant may
            # follow that version's revoke), with the same ref and commitment
            last = self.last
            follows = last is not None and (last["kind"] in ("create", "update", "delete",
                                                             "access.disclose") or
                                            (e["kind"] == "consent.grant" and
                                             last["kind"] == "consent.revoke"))
            if not follows or last["ref"] != e["ref"] or last["commitment"] != e["commitment"]:
                raise VerifyError("entry index %d (line %d): %s of %s does not directly follow "
                                  "that version's own entry" % (idx, lineno, e["kind"], e["ref"]))
        else:
            if e["ref"] in self.refs:
                raise VerifyError("entry index %d (line %d): ref %s already anchored at index %d"
                                  % (idx, lineno, e["ref"], self.refs[e["ref"]][0]))
            self.refs[e["ref"]] = (idx, e["kind"], e["commitment"])
        self.last = e
        h = leaf_hash(line)
        self.tree.append(h)
        self.prev = h
        self.last_entry_line = lineno

    def checkpoint(self, lineno, note):
        try:
            text, signers = open_note(note, self.keys)
            origin, size, root = parse_checkpoint_text(text)
            if origin not in [k.name for k in signers]:
                raise VerifyError("origin %r is not the name of the signing key (%s)"
                                  % (origin, ", ".join(k.vkey for k in signers)))
            if size != self.tree.size:
                raise VerifyError("size %d != number of entries read so far (%d)"
                                  % (size, self.tree.size))
            want = self.tree.root()
            if root != want:
                raise VerifyError("root %s != root of entries 0..%d (%s)"
                                  % (base64.b64encode(root).decode(), size - 1,
                                     base64.b64encode(want).decode()))
        except VerifyError as ex:
            raise VerifyError("checkpoint at line %d (%s): %s" % (lineno, self.where(), ex))
        self.checkpoints += 1
        self.last_cp_size = size

    def line(self, lineno, line):
        if line.startswith(b'{"checkpoint":'):
            try:
                obj = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as ex:
                raise VerifyError("checkpoint at line %d (%s): not JSON: %s"
                                  % (lineno, self.where(), ex))
            if not isinstance(obj, dict) or list(obj) != ["checkpoint"] \
                    or not isinstance(obj["checkpoint"], str):
                raise VerifyError("checkpoint at line %d (%s): want {\"checkpoint\":\"...\"}"
                                  % (lineno, self.where()))
            self.checkpoint(lineno, obj["checkpoint"].encode("utf-8"))
        else:
            self.entry(lineno, line)

    def finish(self):
        if self.checkpoints == 0:
            raise VerifyError("export has no checkpoint")
        if self.last_cp_size != self.tree.size:
            raise VerifyError("entry index %d (line %d) onwards: not covered by any checkpoint "
                              "(the last checkpoint has size %d, the export %d entries)"
                              % (self.last_cp_size, self.last_entry_line, self.last_cp_size,
                                 self.tree.size))


def read_lines(path, what):
    """NDJSON: every line \\n-terminated, no empty lines, no CR."""
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise VerifyError("%s: last line is not newline-terminated" % what)
    lines = data.split(b"\n")[:-1] if data else []
    for i, l in enumerate(lines, 1):
        if not l:
            raise VerifyError("%s: line %d is empty" % (what, i))
    return lines


def verify_records(v, path):
    lines = read_lines(path, "records")
    seen = set()
    for lineno, line in enumerate(lines, 1):
        try:
            r = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as ex:
            raise VerifyError("records line %d: not JSON: %s" % (lineno, ex))
        if not isinstance(r, dict) or set(r) != {"ref", "salt", "bytes"} \
                or not all(isinstance(r[k], str) for k in r):
            raise VerifyError("records line %d: want {\"ref\",\"salt\",\"bytes\"} strings" % lineno)
        ref = r["ref"]
        if ref not in v.refs:
            raise VerifyError("records line %d: ref %s has no entry in the export" % (lineno, ref))
        idx, kind, commitment = v.refs[ref]
        if ref in seen:
            raise VerifyError("entry index %d: records line %d repeats ref %s" % (idx, lineno, ref))
        seen.add(ref)
        if not HEX64_RE.fullmatch(r["salt"]):
            raise VerifyError("entry index %d: records line %d: salt is not 64 lowercase hex"
                              % (idx, lineno))
        salt = bytes.fromhex(r["salt"])
        try:
            body = b64decode_strict(r["bytes"], "bytes")
        except VerifyError as ex:
            raise VerifyError("entry index %d: records line %d: %s" % (idx, lineno, ex))
        got = sha256(salt + body).hex()
        if got != commitment:
            raise VerifyError("entry index %d: records line %d (%s): SHA-256(salt || bytes) = %s "
                              "!= commitment %s" % (idx, lineno, ref, got, commitment))
        if (kind == "delete") != (body == b""):
            raise VerifyError("entry index %d: records line %d (%s): a %s with %d bytes"
                              % (idx, lineno, ref, kind, len(body)))
        if body:
            # The stored JSON of Type/id/_history/v is that version of that resource.
            typ, rid, _, ver = ref.split("/")
            try:
                res = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as ex:
                raise VerifyError("entry index %d: records line %d: bytes are not JSON: %s"
                                  % (idx, lineno, ex))
            meta = res.get("meta") if isinstance(res, dict) else None
            if not isinstance(res, dict) or res.get("resourceType") != typ or res.get("id") != rid \
                    or not isinstance(meta, dict) or meta.get("versionId") != ver:
                raise VerifyError("entry index %d: records line %d: bytes are not %s (resourceType, "
                                  "id, meta.versionId)" % (idx, lineno, ref))
    missing = [ref for ref in v.refs if ref not in seen]
    return len(lines), missing


def load_keys(args):
    keys = []
    for a in args:
        if os.path.isfile(a):
            with open(a, "r", encoding="utf-8") as f:
                vals = [l.strip() for l in f if l.strip()]
        else:
            vals = [a.strip()]
        for s in vals:
            keys.append(Key(s))
    return keys


# --------------------------------------------------------------- selftest ---

def selftest():
    """Section 8, with the values as printed in docs/ledger.md."""
    fails = []

    def check(what, got, want):
        if got != want:
            fails.append("%s: got %s, doc says %s" % (what, got, want))
        else:
            print("ok   %s" % what)

    doc_json = (b'{"resourceType":"Observation","id":"0123456789abcdef0123456789abcdef",'
                b'"meta":{"versionId":"1","lastUpdated":"2026-11-21T10:00:00.000Z"},'
                b'"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},'
                b'"valueQuantity":{"value":72.00,"unit":"/min","system":"http://unitsofmeasure.org",'
                b'"code":"/min"}}')
    check("stored JSON length", len(doc_json), 316)
    salt1 = bytes(range(32))
    c1 = sha256(salt1 + doc_json).hex()
    check("commitment 0", c1, "a0352804d1862698d9473d53536f9f7d1a54dad7801da9c533e80b925d11f886")
    e0 = (b'{"index":0,"time":"2026-11-21T10:00:00.000Z","kind":"create",'
          b'"ref":"Observation/0123456789abcdef0123456789abcdef/_history/1",'
          b'"commitment":"a0352804d1862698d9473d53536f9f7d1a54dad7801da9c533e80b925d11f886",'
          b'"prev":"0000000000000000000000000000000000000000000000000000000000000000"}')
    h0 = leaf_hash(e0).hex()
    check("entry hash 0", h0, "9a8de51bad11d7714b9ffca4bf6cec830b3b58c7f063a0ed3e63281ea268967c")
    salt2 = bytes(range(31, -1, -1))
    c2 = sha256(salt2).hex()
    check("commitment 1 (delete)", c2,
          "69c55c9002eb8c7a4e75d0b49629c4cf83d12cfb56670a8cd6e2db1491a996c4")
    e1 = (b'{"index":1,"time":"2026-11-21T10:00:01.000Z","kind":"delete",'
          b'"ref":"Observation/0123456789abcdef0123456789abcdef/_history/2",'
          b'"commitment":"69c55c9002eb8c7a4e75d0b49629c4cf83d12cfb56670a8cd6e2db1491a996c4",'
          b'"prev":"9a8de51bad11d7714b9ffca4bf6cec830b3b58c7f063a0ed3e63281ea268967c"}')
    h1 = leaf_hash(e1).hex()
    check("entry hash 1", h1, "a969b1e2e9c851c6f2eb8041fe90c92f8b8423f929f37b0b88f0dc20a063b85e")
    # the entry lines in the doc embed the computed values
    check("entry 0 embeds commitment 0", c1.encode() in e0, True)
    check("entry 1 embeds commitment 1", c2.encode() in e1, True)
    check("entry 1 prev = entry hash 0", ('"prev":"%s"' % h0).encode() in e1, True)
    # both doc lines are canonical
    for i, e in enumerate((e0, e1)):
        try:
            parse_entry(e)
            check("entry %d canonical" % i, True, True)
        except VerifyError as ex:
            check("entry %d canonical (%s)" % (i, ex), False, True)
    cr = CompactRange()
    cr.append(bytes.fromhex(h0))
    cr.append(bytes.fromhex(h1))
    root = cr.root()
    check("root of size 2", root.hex(), "2bb9b84e00385c315e67b4820316b4e827be536db18f2303038a437fcb207938")
    check("root of size 2 = H(0x01||h0||h1)", node_hash(bytes.fromhex(h0), bytes.fromhex(h1)), root)
    check("root base64", base64.b64encode(root).decode(), "K7m4TgA4XDFeZ7SCAxa06Ce+U22xjyMDA4pDf8sgeTg=")
    text = b"vitalog.local/example\n2\nK7m4TgA4XDFeZ7SCAxa06Ce+U22xjyMDA4pDf8sgeTg=\n"
    check("checkpoint text parses", parse_checkpoint_text(text),
          ("vitalog.local/example", 2, root))
    check("empty tree root (section 3)", CompactRange().root().hex()[:8] + "..." +
          CompactRange().root().hex()[-4:], "e3b0c442...b855")

    # Run the whole export pipeline on the example, signed with a throwaway key.
    sk = nacl.signing.SigningKey(bytes(range(100, 132)))
    pub = bytes(sk.verify_key)
    name = "vitalog.local/example"
    vkey = "%s+%s+%s" % (name, key_id(name, pub).hex(), base64.b64encode(b"\x01" + pub).decode())

    def sign_note(text, skey, kname):
        kpub = bytes(skey.verify_key)
        sig = skey.sign(text).signature
        return text + ("\n%s %s " % (EM_DASH, kname)).encode() + \
            base64.b64encode(key_id(kname, kpub) + sig) + b"\n"

    note = sign_note(text, sk, name)
    cpline = json.dumps({"checkpoint": note.decode()}).encode()
    v = Verifier([Key(vkey)])
    for n, l in enumerate((e0, e1, cpline), 1):
        v.line(n, l)
    v.finish()
    check("example export verifies", v.tree.size, 2)
    # tampering is caught
    for what, lines in (("byte of entry 1", (e0, e1.replace(b"delete", b"delets"), cpline)),
                        ("dropped entry 0", (e1, cpline)),
                        ("no checkpoint", (e0, e1)),
                        ("checkpoint byte", (e0, e1, cpline.replace(b"\\n2\\n", b"\\n3\\n")))):
        try:
            v = Verifier([Key(vkey)])
            for n, l in enumerate(lines, 1):
                v.line(n, l)
            v.finish()
            check("tampered (%s) rejected" % what, "accepted", "rejected")
        except VerifyError as ex:
            check("tampered (%s) rejected: %s" % (what, str(ex).splitlines()[0]), True, True)

    # Key rotation, as section 2/5 describe it.
    sk2 = nacl.signing.SigningKey(bytes(range(200, 232)))
    pub2 = bytes(sk2.verify_key)
    vkey2 = "%s+%s+%s" % (name, key_id(name, pub2).hex(), base64.b64encode(b"\x01" + pub2).decode())
    rsig = base64.b64encode(sk.sign(ROTATION_PREFIX + vkey2.encode() + b"\n").signature).decode()
    e2 = ('{"index":2,"time":"2026-11-21T10:00:02.000Z","kind":"key-rotation","key":%s,'
          '"signature":%s,"prev":"%s"}' % (jstr(vkey2), jstr(rsig),
                                            leaf_hash(e1).hex())).encode()
    cr.append(leaf_hash(e2))
    text3 = ("%s\n3\n%s\n" % (name, base64.b64encode(cr.root()).decode())).encode()
    for what, signer, ok in (("new key", sk2, True), ("old key", sk, False)):
        cp3 = json.dumps({"checkpoint": sign_note(text3, signer, name).decode()}).encode()
        try:
            v = Verifier([Key(vkey)])
            for n, l in enumerate((e0, e1, cpline, e2, cp3), 1):
                v.line(n, l)
            v.finish()
            check("rotation, checkpoint by %s accepted" % what, True, ok)
        except VerifyError as ex:
            check("rotation, checkpoint by %s rejected (%s)" % (what, ex), False, ok)

    # Public vectors, when the repository's copies are at hand.
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "data", "ledger")
    lr = os.path.join(data, "rfc9162", "leaves-and-roots.json")
    if os.path.exists(lr):
        with open(lr) as f:
            j = json.load(f)
        leaves = [bytes.fromhex(x) for x in j["leaf_inputs_hex"]]
        for n, want in enumerate(j["root_hashes_hex_by_tree_size"]):
            c = CompactRange()
            for l in leaves[:n]:
                c.append(leaf_hash(l))
            if c.root().hex() != want or mth(leaves[:n]).hex() != want:
                fails.append("RFC 9162 root of size %d" % n)
        print("ok   RFC 9162 roots of sizes 0..%d (transparency-dev vectors)" % (len(leaves)))
    for base in ("c2sp-signed-note-example", "go-sumdb-peterneumann",
                 "sum.golang.org-checkpoint-6476701"):
        p = os.path.join(data, "c2sp", base)
        if os.path.exists(p + ".note"):
            keys = load_keys([p + ".vkey"])
            with open(p + ".note", "rb") as f:
                msg = f.read()
            try:
                open_note(msg, keys)
                check("C2SP note %s verifies" % base, True, True)
            except VerifyError as ex:
                check("C2SP note %s verifies (%s)" % (base, ex), False, True)
            bad = bytearray(msg)
            bad[0] ^= 1
            try:
                open_note(bytes(bad), keys)
                check("C2SP note %s with a flipped bit rejected" % base, False, True)
            except VerifyError:
                check("C2SP note %s with a flipped bit rejected" % base, True, True)

    for f in fails:
        print("FAIL %s" % f)
    print("selftest: %s" % ("FAILED" if fails else "passed"))
    return 1 if fails else 0


# ------------------------------------------------------------------- main ---

def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--key", action="append", default=[],
                   help="trusted verifier key, or a file holding one per line (repeatable)")
    p.add_argument("--records", help="records NDJSON (vitalog export --records)")
    p.add_argument("--selftest", action="store_true", help="check section 8 and public vectors")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("export", nargs="?")
    a = p.parse_args(argv)
    if a.selftest:
        return selftest()
    if not a.key or not a.export:
        p.error("--key and EXPORT are required")
    try:
        keys = load_keys(a.key)
    except (OSError, VerifyError) as ex:
        sys.stderr.write("independent_verify: bad key: %s\n" % ex)
        return 2
    log = (lambda s: sys.stderr.write(s + "\n")) if a.verbose else None
    v = Verifier(keys, log)
    try:
        try:
            lines = read_lines(a.export, "export")
        except OSError as ex:
            sys.stderr.write("independent_verify: %s\n" % ex)
            return 2
        for lineno, line in enumerate(lines, 1):
            v.line(lineno, line)
        v.finish()
        msg = "export OK: %d entries, %d checkpoints, %d key rotations, root %s" % (
            v.tree.size, v.checkpoints, v.rotations, base64.b64encode(v.tree.root()).decode())
        if a.records:
            try:
                n, missing = verify_records(v, a.records)
            except OSError as ex:
                sys.stderr.write("independent_verify: %s\n" % ex)
                return 2
            msg += "; records OK: %d commitments match" % n
            if missing:
                msg += " (%d entries have no records line, e.g. %s)" % (len(missing), missing[0])
    except VerifyError as ex:
        sys.stderr.write("independent_verify: FAILED: %s\n" % ex)
        return 1
    print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
