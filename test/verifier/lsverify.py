#!/usr/bin/env python3
"""lsverify: an independent verifier of Line Station documents, written from docs/formats.md alone.

It shares no code with the station: Python 3 standard library for JSON, base64, SHA-256 and its own RFC 8785 (JCS)
implementation, and the openssl command line for every certificate and signature check. It follows the steps of
docs/formats.md "Independent verification" and prints one JSON object (what it checked); exit 0 when everything
verified, 1 when something did not (the message says what), 2 on a usage error.

  lsverify.py jcs < doc.json                     canonical JSON (RFC 8785) of a JSON document
  lsverify.py jcs-number HEX...                   JCS text of IEEE 754 doubles given as 16 hex digits, one a line
  lsverify.py root --root root.pem --root-sha256 FP
  lsverify.py record --jws F --root root.pem --root-sha256 FP [--profile P.json] [--policy policy.jws]
  lsverify.py manifest --jws F --root root.pem --root-sha256 FP
  lsverify.py receipt --file F --registry-cert registry.pem [--station ID]

Run by test/integration/independent-verifier.test.ts against records, manifests and receipts a real station made.
"""

import argparse
import base64
import decimal
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile


class Refused(Exception):
    """A check failed: the document does not verify."""


def check(cond, what):
    if not cond:
        raise Refused(what)


# ---------------------------------------------------------------- RFC 8785 (JCS), from the RFC


def jcs_number(x):
    """ECMAScript Number.prototype.toString for a finite double (RFC 8785 section 3.2.2.3)."""
    if isinstance(x, bool):
        raise Refused("not a number")
    x = float(x)
    if x != x or x in (float("inf"), float("-inf")):
        raise Refused("JCS: non-finite number")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() gives the shortest decimal that round-trips, as ECMAScript requires.
    d = decimal.Decimal(repr(abs(x)))
    _, digits, exp = d.as_tuple()
    s = "".join(map(str, digits)).rstrip("0")
    exp += len(digits) - len(s)  # trailing zeros went into the exponent
    k = len(s)
    n = k + exp  # value = 0.s * 10^n
    if k <= n <= 21:
        out = s + "0" * (n - k)
    elif 0 < n <= 21:
        out = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + s
    else:
        e = n - 1
        mant = s if k == 1 else s[0] + "." + s[1:]
        out = mant + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + out


_ESC = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jcs_string(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if 0xD800 <= o <= 0xDFFF:
            raise Refused("JCS: lone surrogate in a string")
        if ch in _ESC:
            out.append(_ESC[ch])
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def utf16_key(name):
    return name.encode("utf-16-be", "surrogatepass")  # byte order of UTF-16BE = code unit order


def jcs(v):
    """The canonical UTF-8 text of a parsed JSON value."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return jcs_number(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        names = sorted(v.keys(), key=utf16_key)
        return "{" + ",".join(jcs_string(k) + ":" + jcs(v[k]) for k in names) + "}"
    raise Refused("JCS: not a JSON value")


def parse_json(data, what):
    def no_dupes(pairs):
        d = {}
        for k, val in pairs:
            check(k not in d, f"{what}: duplicate member {k}")
            d[k] = val
        return d

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=no_dupes)
    except (UnicodeDecodeError, ValueError) as e:
        raise Refused(f"{what}: not UTF-8 JSON ({e})")


def check_canonical(data, what):
    """The bytes are exactly the JCS form of the JSON they hold; returns the parsed value."""
    v = parse_json(data, what)
    check(jcs(v).encode("utf-8") == data, f"{what}: not canonical JSON (RFC 8785)")
    return v


# ---------------------------------------------------------------- encodings, openssl


def b64url(s, what):
    check(isinstance(s, str) and re.fullmatch(r"[A-Za-z0-9_-]*", s) is not None, f"{what}: not base64url")
    check(len(s) % 4 != 1, f"{what}: not base64url")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    check(base64.urlsafe_b64encode(raw).decode().rstrip("=") == s, f"{what}: not canonical base64url")
    return raw


def b64std(s, what):
    check(isinstance(s, str), f"{what}: not a string")
    try:
        raw = base64.b64decode(s, validate=True)
    except ValueError:
        raise Refused(f"{what}: not standard base64")
    check(base64.b64encode(raw).decode() == s, f"{what}: not canonical standard base64")
    return raw


def b64url_encode(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


RECORD_V2 = "line-station/provisioning-record/v2"
RECORD_V3 = "line-station/provisioning-record/v3"


def sha256hex(b):
    return hashlib.sha256(b).hexdigest()


class OpenSSL:
    """The openssl command line in a private temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lsverify-")
        self.n = 0

    def file(self, data, suffix):
        self.n += 1
        p = os.path.join(self.dir, f"f{self.n}{suffix}")
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return p

    def run(self, *args, input=None):
        r = subprocess.run(["openssl", *args], input=input, capture_output=True)
        return r.returncode, r.stdout, r.stderr

    def out(self, *args, input=None):
        code, out, err = self.run(*args, input=input)
        check(code == 0, f"openssl {args[0]}: {err.decode(errors='replace').strip()}")
        return out

    def der_to_pem(self, der):
        return self.out("x509", "-inform", "DER", "-in", self.file(der, ".der")).decode()

    def pem_to_der(self, pem):
        return self.out("x509", "-in", self.file(pem, ".pem"), "-outform", "DER")

    def fingerprint(self, pem_path):
        line = self.out("x509", "-in", pem_path, "-noout", "-fingerprint", "-sha256").decode()
        return line.split("=", 1)[1].strip().replace(":", "").lower()

    def verify_chain(self, root_pem_path, leaf_pem, intermediates_pem):
        args = ["verify", "-x509_strict", "-CAfile", root_pem_path]
        if intermediates_pem:
            args += ["-untrusted", self.file("".join(intermediates_pem), ".pem")]
        code, out, err = self.run(*args, self.file(leaf_pem, ".pem"))
        check(code == 0 and out.strip().endswith(b": OK"), f"openssl verify: {(out + err).decode().strip()}")

    def spki_der(self, cert_pem):
        pub = self.out("x509", "-in", self.file(cert_pem, ".pem"), "-noout", "-pubkey")
        return self.out("pkey", "-pubin", "-outform", "DER", input=pub)

    def serial(self, cert_pem):
        line = self.out("x509", "-in", self.file(cert_pem, ".pem"), "-noout", "-serial").decode()
        return line.split("=", 1)[1].strip().lower().lstrip("0")

    def verify_es(self, cert_pem, alg, raw_sig, data):
        size = {"ES256": 32, "ES384": 48}[alg]
        check(len(raw_sig) == 2 * size, f"signature: {len(raw_sig)} bytes, expected raw r||s of {2 * size}")
        pub = self.file(self.out("x509", "-in", self.file(cert_pem, ".pem"), "-noout", "-pubkey"), ".pem")
        return self.verify_es_key(pub, alg, raw_sig, data)

    def verify_es_key(self, pub_pem_path, alg, raw_sig, data):
        size = {"ES256": 32, "ES384": 48}[alg]
        r, s = raw_sig[:size], raw_sig[size:]
        sig = der_seq(der_int(r) + der_int(s))
        code, out, err = self.run(
            "dgst", "-sha256" if alg == "ES256" else "-sha384", "-verify", pub_pem_path,
            "-signature", self.file(sig, ".sig"), self.file(data, ".bin"),
        )
        check(code == 0 and b"Verified OK" in out, f"signature does not verify ({(out + err).decode().strip()})")


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_int(raw):
    v = raw.lstrip(b"\x00") or b"\x00"
    if v[0] & 0x80:
        v = b"\x00" + v
    return b"\x02" + der_len(len(v)) + v


def der_seq(body):
    return b"\x30" + der_len(len(body)) + body


PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?")


# ---------------------------------------------------------------- the steps of docs/formats.md


def pinned_root(o, root_path, root_sha256):
    """Step 1: the root is the one whose fingerprint was obtained out of band."""
    with open(root_path, "rb") as f:
        pem = f.read().decode()
    check(len(PEM_RE.findall(pem)) == 1, "root: expected exactly one PEM certificate")
    fp = o.fingerprint(root_path)
    want = root_sha256.replace(":", "").strip().lower()
    check(fp == want, f"root: fingerprint {fp} is not the pinned {want}")
    o.verify_chain(root_path, pem, [])  # self-signed and a valid CA for openssl
    return o.pem_to_der(pem)


def verify_jws(o, jws, typ, root_path, root_der):
    """Step 2: a compact JWS whose x5c chain ends at the pinned root and whose signature verifies."""
    parts = jws.strip().split(".")
    check(len(parts) == 3, "JWS: expected three dot-separated parts")
    header_b = b64url(parts[0], "JWS header")
    payload = b64url(parts[1], "JWS payload")
    sig = b64url(parts[2], "JWS signature")
    header = check_canonical(header_b, "JWS header")
    check(set(header) <= {"alg", "typ", "x5c", "kid"}, f"JWS header: unexpected members {sorted(header)}")
    check(header.get("alg") in ("ES256", "ES384"), f"JWS: alg {header.get('alg')!r}")
    check(header.get("typ") == typ, f"JWS: typ {header.get('typ')!r}, expected {typ}")
    x5c = header.get("x5c")
    check(isinstance(x5c, list) and 1 <= len(x5c) <= 8, "JWS: x5c missing")
    ders = [b64std(c, f"x5c[{i}]") for i, c in enumerate(x5c)]
    pems = [o.der_to_pem(d) for d in ders]
    check(ders[-1] == root_der, "JWS: the last x5c certificate is not the pinned root")
    o.verify_chain(root_path, pems[0], pems[1:-1])
    o.verify_es(pems[0], header["alg"], sig, (parts[0] + "." + parts[1]).encode("ascii"))
    return header, payload, ders


MANIFEST_KEYS = {"schema", "board", "measurements", "policy", "policyRef", "verdict", "capturedAt"}
BOARD_KEYS = {"chipId", "serialNumber", "model", "hardwareRevision", "firmwareVersion"}
LS_MEAS_KEYS = {"firmware", "secureBoot", "debugLocked", "fuseDigest", "configDigest"}
TPM_MEAS_KEYS = {"pcrBank", "pcrs", "quote", "ak"}
POLICY_KEYS = {"firmware", "secureBoot", "debugLocked", "fuseDigests", "configDigests", "pcrs"}
HEX64 = re.compile(r"[0-9a-f]{64}")


def expected_violations(m, p):
    """The LS baseline rules of docs/formats.md "Baseline rules", evaluated here: (rule, expected, actual) triples."""
    out = []
    fw = m["firmware"]
    names = [f["name"] for f in fw]
    for name in dict.fromkeys(names):
        if names.count(name) > 1:
            out.append(("firmware.duplicate", 1, names.count(name)))
    for slot, allowed in p["firmware"].items():
        got = next((f for f in fw if f["name"] == slot), None)
        if got is None:
            out.append(("firmware.missing", allowed, None))
        elif got["sha256"] not in allowed:
            out.append(("firmware.digest", allowed, got["sha256"]))
    for name in dict.fromkeys(names):
        if name not in p["firmware"]:
            out.append(("firmware.unlisted", None, next(f for f in fw if f["name"] == name)["sha256"]))
    if p["secureBoot"] == "required" and m["secureBoot"] is not True:
        out.append(("secureBoot", True, m["secureBoot"]))
    if p["debugLocked"] == "required" and m["debugLocked"] is not True:
        out.append(("debugLocked", True, m["debugLocked"]))
    if "fuseDigests" in p and m["fuseDigest"] not in p["fuseDigests"]:
        out.append(("fuseDigest", p["fuseDigests"], m["fuseDigest"]))
    if "configDigests" in p and m["configDigest"] not in p["configDigests"]:
        out.append(("configDigest", p["configDigests"], m["configDigest"]))
    return out


def check_manifest(o, jws, root_path, root_der):
    """Steps 3 and 4: the manifest JWS and its payload (ManifestSchema, the policy digest, the verdict)."""
    header, payload, _ = verify_jws(o, jws, "line-station-manifest+jws", root_path, root_der)
    m = check_canonical(payload, "manifest payload")
    check(set(m) == MANIFEST_KEYS, f"manifest: members {sorted(m)}")
    check(m["schema"] == "line-station/manifest/v1", "manifest: schema")
    check(set(m["board"]) == BOARD_KEYS, "manifest: board members")
    meas = m["measurements"]
    check(set(meas) in (LS_MEAS_KEYS, TPM_MEAS_KEYS), f"manifest: measurements members {sorted(meas)}")
    check(set(m["policy"]) <= POLICY_KEYS and {"firmware", "secureBoot", "debugLocked"} <= set(m["policy"]),
          "manifest: policy members")
    check(set(m["policyRef"]) == {"workOrder", "sha256"}, "manifest: policyRef members")
    # The policy digest covers the canonical JSON of the baseline in `policy` (the work order's, after a registry
    # policy replaced its firmware digests).
    check(m["policyRef"]["sha256"] == sha256hex(jcs(m["policy"]).encode()), "manifest: policyRef.sha256")
    v = m["verdict"]
    check(set(v) == {"pass", "violations"}, "manifest: verdict members")
    for x in v["violations"]:
        check(set(x) == {"rule", "expected", "actual", "message"}, "manifest: violation members")
    check(v["pass"] == (len(v["violations"]) == 0), "manifest: pass is not 'no violations'")
    if set(meas) == LS_MEAS_KEYS:
        want = sorted(json.dumps(t, sort_keys=True) for t in expected_violations(meas, m["policy"]))
        got = sorted(json.dumps((x["rule"], x["expected"], x["actual"]), sort_keys=True) for x in v["violations"])
        check(want == got, f"manifest: the violations are not the baseline rules' ({got} vs {want})")
    return m


def apply_override(cert_profile, override):
    """docs/formats.md "Profile override": members replace the profile's; organization goes into the subject."""
    if override is None:
        return cert_profile
    eff = dict(cert_profile)
    for k, val in override.items():
        if k == "organization":
            eff["subject"] = dict(eff["subject"], organization=val)
        else:
            eff[k] = val
    return eff


def cmd_record(o, a):
    root_der = pinned_root(o, a.root, a.root_sha256)
    with open(a.jws) as f:
        jws = f.read()
    header, payload, x5c = verify_jws(o, jws, "line-station-record+jws", a.root, root_der)
    r = check_canonical(payload, "record payload")
    schema = r.get("schema")
    check(schema in (RECORD_V2, RECORD_V3), f"record: schema {schema!r}")
    check(r["outcome"] == "provisioned", "record: outcome")
    check(r["station"]["certificateSha256"] == sha256hex(x5c[0]), "record: station.certificateSha256 is not x5c[0]")
    man = r.get("manifest")
    if schema == RECORD_V3:
        # v3: no `chain`; the issuing chain is x5c after the station certificate (the root last, checked in step 2).
        check("chain" not in r, "record: a v3 record has a chain member")
        check(len(x5c) >= 2, "record: x5c holds no issuing chain")
        chain = [o.der_to_pem(d) for d in x5c[1:]]
        # The manifest: {payload, signature}; its JWS is rebuilt with the record's alg and x5c.
        check(isinstance(man, dict) and set(man) == {"payload", "signature"}, "record: v3 manifest members")
        check(isinstance(man["payload"], dict), "record: manifest.payload is not an object")
        mh = jcs({"alg": header["alg"], "typ": "line-station-manifest+jws", "x5c": header["x5c"]})
        manifest_jws = b64url_encode(mh.encode()) + "." + b64url_encode(jcs(man["payload"]).encode()) + "."
        manifest_jws += man["signature"] if isinstance(man["signature"], str) else ""
    else:
        # v2: `chain`: an array of PEM strings, issuing CA first, the root last; the manifest as its compact JWS.
        chain = r["chain"]
        check(isinstance(chain, list) and all(isinstance(c, str) and PEM_RE.fullmatch(c) for c in chain),
              "record: chain is not an array of PEM strings")
        check(isinstance(man, dict) and set(man) == {"jws"}, "record: v2 manifest members")
        manifest_jws = man["jws"]
    check(o.pem_to_der(chain[-1]) == root_der, "record: chain does not end at the pinned root")
    cert = r["certificate"]
    o.verify_chain(a.root, cert["pem"], chain[:-1])
    cert_der = o.pem_to_der(cert["pem"])
    check(sha256hex(cert_der) == cert["sha256"], "record: certificate.sha256")
    check(o.serial(cert["pem"]) == cert["serialNumber"].lower().lstrip("0"), "record: certificate.serialNumber")
    check(b64url(r["key"]["publicKeySpki"], "key.publicKeySpki") == o.spki_der(cert["pem"]),
          "record: key.publicKeySpki is not the certificate's key")
    # The embedded manifest: signed by the same station, the same board, work order and verdict.
    m = check_manifest(o, manifest_jws, a.root, root_der)
    board = {k: v for k, v in r["board"].items() if k != "port"}
    check(m["board"] == board, "record: the manifest is another board's")
    check(m["policyRef"]["workOrder"] == r["workOrder"], "record: the manifest is another work order's")
    check(m["verdict"] == r["verdict"], "record: verdict differs from the manifest's")
    check(r["verdict"]["pass"] is True, "record: a record of a failing board")
    att = r["attestation"]
    if "measurementsSha256" in att:
        check(att["measurementsSha256"] == sha256hex(jcs(m["measurements"]).encode()),
              "record: attestation.measurementsSha256 is not the manifest's measurements")
    checked = ["root", "jws", "canonical", "chain", "certificate", "key", "manifest"]
    pol = r.get("policy")
    if a.profile:
        check(pol is not None, "record: no policy member")
        with open(a.profile, "rb") as f:
            prof = parse_json(f.read(), "profile")
        eff = apply_override(prof["certificate"], pol["profileOverride"])
        check(sha256hex(jcs(eff).encode()) == pol["certificateProfileSha256"],
              "record: policy.certificateProfileSha256 is not the profile with its override")
        checked.append("certificateProfile")
    if a.policy:
        with open(a.policy) as f:
            pjws = f.read().strip()
        p_payload = b64url(pjws.split(".")[1], "policy payload")
        check(pol is not None and pol["sha256"] == sha256hex(p_payload),
              "record: policy.sha256 is not the SHA-256 of the policy JWS payload bytes")
        check(pol["version"] == parse_json(p_payload, "policy payload")["version"], "record: policy.version")
        checked.append("policy")
    return {"ok": True, "recordId": r["recordId"], "schema": schema, "serialNumber": r["board"]["serialNumber"],
            "checked": checked}


def cmd_manifest(o, a):
    root_der = pinned_root(o, a.root, a.root_sha256)
    with open(a.jws) as f:
        m = check_manifest(o, f.read(), a.root, root_der)
    return {"ok": True, "serialNumber": m["board"]["serialNumber"], "pass": m["verdict"]["pass"],
            "rules": [x["rule"] for x in m["verdict"]["violations"]]}


def cmd_receipt(o, a):
    with open(a.file, "rb") as f:
        raw = f.read()
    text = raw.decode("ascii")
    check(re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n?", text) is not None,
          "receipt file: not one compact JWS (and at most one newline)")
    h64, p64, s64 = text.strip().split(".")
    header = check_canonical(b64url(h64, "receipt header"), "receipt header")
    check(header.get("typ") == "line-station-receipt+jws", "receipt: typ")
    check(header.get("alg") in ("ES256", "ES384"), "receipt: alg")
    with open(a.registry_cert, "rb") as f:
        reg_pem = f.read().decode()
    # The key is the pinned registry certificate's, never one from the message.
    pub = o.file(o.out("x509", "-in", o.file(reg_pem, ".pem"), "-noout", "-pubkey"), ".pem")
    o.verify_es_key(pub, header["alg"], b64url(s64, "receipt signature"), (h64 + "." + p64).encode("ascii"))
    p = check_canonical(b64url(p64, "receipt payload"), "receipt payload")
    check(p.get("schema") == "line-station/receipt/v1", "receipt: schema")
    if a.station:
        check(p["stationId"] == a.station, f"receipt: for station {p['stationId']}")
    for x in p["accepted"]:
        check(set(x) == {"recordId", "sha256"} and HEX64.fullmatch(x["sha256"]), "receipt: accepted entry")
    return {"ok": True, "receiptId": p["receiptId"], "batchId": p["batchId"],
            "accepted": p["accepted"], "rejected": len(p["rejected"])}


def main(argv):
    ap = argparse.ArgumentParser(prog="lsverify.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("jcs")
    n = sub.add_parser("jcs-number")
    n.add_argument("hex", nargs="+")
    rt = sub.add_parser("root")
    for p in (rt, sub.add_parser("record"), sub.add_parser("manifest")):
        p.add_argument("--root", required=True)
        p.add_argument("--root-sha256", required=True)
        if p is not rt:
            p.add_argument("--jws", required=True)
    rec = sub.choices["record"]
    rec.add_argument("--profile")
    rec.add_argument("--policy")
    rc = sub.add_parser("receipt")
    rc.add_argument("--file", required=True)
    rc.add_argument("--registry-cert", required=True)
    rc.add_argument("--station")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "jcs":
            data = sys.stdin.buffer.read()
            sys.stdout.buffer.write(jcs(parse_json(data, "input")).encode("utf-8"))
            return 0
        if a.cmd == "jcs-number":
            for h in a.hex:
                sys.stdout.write(jcs_number(struct.unpack(">d", bytes.fromhex(h.rjust(16, "0")))[0]) + "\n")
            return 0
        o = OpenSSL()
        if a.cmd == "root":
            result = {"ok": True, "rootSha256": sha256hex(pinned_root(o, a.root, a.root_sha256))}
        else:
            result = {"record": cmd_record, "manifest": cmd_manifest, "receipt": cmd_receipt}[a.cmd](o, a)
        print(json.dumps(result))
        return 0
    except Refused as e:
        print(json.dumps({"ok": False, "error": str(e)}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
