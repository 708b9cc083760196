#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A few raw PKCS#11 calls through ctypes, for evidence the module matrix needs and pkcs11-tool
can't give: C_GenerateKeyPair with an explicit usage template (every policy attribute set true or
false). Talks to the real module; it is a client, not a mock.

    python3 p11probe.py MODULE TOKEN_LABEL PIN_VAR keygen rsa2048|ec-p256 sign[,decrypt,...] [KEEP]

KEEP (default: the usage asked for): flags the module set beyond KEEP are then switched off
with C_SetAttributeValue, to see whether the module lets a tool correct its defaults.

Prints one line: "CKR_OK <private flags> / <public flags>" or "CKR_<error>". The key pair made
is destroyed again. The PIN comes from the environment variable PIN_VAR."""

import ctypes as C
import os
import sys

ULONG = C.c_ulong
CKR = {0: "CKR_OK", 5: "CKR_GENERAL_ERROR", 0x12: "CKR_ATTRIBUTE_TYPE_INVALID", 0x13: "CKR_ATTRIBUTE_VALUE_INVALID",
       0x70: "CKR_MECHANISM_INVALID", 0xD1: "CKR_TEMPLATE_INCONSISTENT", 0xD0: "CKR_TEMPLATE_INCOMPLETE",
       0x7: "CKR_ARGUMENTS_BAD", 0xA0: "CKR_PIN_INCORRECT", 0x100: "CKR_USER_ALREADY_LOGGED_IN"}
FN = {"C_SetAttributeValue": 26, "C_Initialize": 1, "C_Finalize": 2, "C_GetSlotList": 5, "C_GetTokenInfo": 7, "C_OpenSession": 13,
      "C_CloseSession": 14, "C_Login": 19, "C_DestroyObject": 23, "C_GetAttributeValue": 25,
      "C_GenerateKeyPair": 60}
CKA = {"class": 0, "token": 1, "private": 2, "label": 3, "key_type": 0x100, "id": 0x102, "sensitive": 0x103,
       "encrypt": 0x104, "decrypt": 0x105, "wrap": 0x106, "unwrap": 0x107, "sign": 0x108, "verify": 0x10A,
       "derive": 0x10C, "modulus_bits": 0x121, "public_exponent": 0x122, "extractable": 0x162, "ec_params": 0x180}
P256 = bytes.fromhex("06082a8648ce3d030107")
PRIV_FLAGS = ("decrypt", "sign", "unwrap", "derive")
PUB_FLAGS = ("encrypt", "verify", "wrap", "derive")
PUB_OF = {"sign": "verify", "decrypt": "encrypt", "unwrap": "wrap", "derive": "derive"}


class Attr(C.Structure):
    _fields_ = [("type", ULONG), ("pValue", C.c_void_p), ("ulValueLen", ULONG)]


class Mech(C.Structure):
    _fields_ = [("mechanism", ULONG), ("pParameter", C.c_void_p), ("ulParameterLen", ULONG)]


class Template:
    def __init__(self, items):
        self.keep = []
        self.arr = (Attr * len(items))()
        for i, (t, v) in enumerate(items):
            if isinstance(v, bool):
                buf = C.create_string_buffer(b"\x01" if v else b"\x00", 1)
            elif isinstance(v, int):
                buf = ULONG(v)
            else:
                buf = C.create_string_buffer(v, len(v))
            self.keep.append(buf)
            self.arr[i] = Attr(CKA[t], C.cast(C.pointer(buf), C.c_void_p), C.sizeof(buf))


def main():
    module, token, pin_var, op, alg, usage = sys.argv[1:7]
    assert op == "keygen"
    usage = set(usage.split(","))
    keep = set(sys.argv[7].split(",")) if len(sys.argv) > 7 else usage   # flags to keep afterwards
    lib = C.CDLL(module)
    fl = C.POINTER(C.c_void_p)()
    lib.C_GetFunctionList(C.byref(fl))
    table = C.cast(fl, C.POINTER(C.c_void_p))

    def f(name, *args):
        fn = C.CFUNCTYPE(ULONG)(table[FN[name]])
        return fn(*[ULONG(a) if isinstance(a, int) else a for a in args])
    check = lambda rv, what: rv == 0 or sys.exit("%s: %s" % (what, CKR.get(rv, hex(rv))))
    check(f("C_Initialize", C.c_void_p(None)), "C_Initialize")
    n = ULONG(0)
    f("C_GetSlotList", 1, C.c_void_p(None), C.byref(n))
    slots = (ULONG * n.value)()
    f("C_GetSlotList", 1, slots, C.byref(n))
    slot = None
    for s in slots:
        info = C.create_string_buffer(512)
        f("C_GetTokenInfo", s, info)
        if info.raw[:32].decode(errors="replace").rstrip() == token:
            slot = s
    if slot is None:
        sys.exit("no token %s" % token)
    h = ULONG(0)
    check(f("C_OpenSession", slot, 6, C.c_void_p(None), C.c_void_p(None), C.byref(h)), "C_OpenSession")
    pin = os.environ[pin_var].encode()
    check(f("C_Login", h.value, 1, C.c_char_p(pin), len(pin)), "C_Login")
    common = [("token", True), ("label", b"mx-probe"), ("id", b"\xee\xed")]
    words = ("sign", "decrypt", "unwrap") if alg.startswith("rsa") else ("sign", "derive")
    pub = common + [("private", False)] + [(PUB_OF[u], u in usage) for u in words]
    priv = common + [("private", True), ("sensitive", True), ("extractable", False)] + \
        [(u, u in usage) for u in words]
    if alg.startswith("rsa"):
        pub += [("modulus_bits", int(alg[3:])), ("public_exponent", b"\x01\x00\x01")]
        mech = Mech(0, None, 0)
    else:
        pub += [("ec_params", P256)]
        mech = Mech(0x1040, None, 0)
    tpub, tpriv = Template(pub), Template(priv)
    hpub, hpriv = ULONG(0), ULONG(0)
    rv = f("C_GenerateKeyPair", h.value, C.byref(mech), tpub.arr, len(pub), tpriv.arr, len(priv),
           C.byref(hpub), C.byref(hpriv))
    if rv != 0:
        print(CKR.get(rv, hex(rv)))
        return
    got, fixes = [], []
    want = keep | {PUB_OF[u] for u in keep}
    for hh, names in ((hpriv, PRIV_FLAGS), (hpub, PUB_FLAGS)):
        on = flags_on(f, h, hh, names)
        for name in on - want:   # what the module added: can it be switched off afterwards?
            t = Template([(name, False)])
            rv = f("C_SetAttributeValue", h.value, hh.value, t.arr, 1)
            still = name in flags_on(f, h, hh, (name,))
            fixes.append("C_SetAttributeValue(%s=false): %s%s" % (name, CKR.get(rv, hex(rv)),
                                                                   ", still true" if still else ""))
        got.append(",".join(sorted(on)) or "-")
        f("C_DestroyObject", h.value, hh.value)
    print("CKR_OK %s / %s%s" % (got[0], got[1], ("; " + "; ".join(fixes)) if fixes else ""))


def flags_on(f, h, hh, names):
    on = set()
    for name in names:
        b = C.create_string_buffer(1)
        a = (Attr * 1)(Attr(CKA[name], C.cast(b, C.c_void_p), 1))
        if f("C_GetAttributeValue", h.value, hh.value, a, 1) == 0 and b.raw == b"\x01":
            on.add(name)
    return on


if __name__ == "__main__":
    main()
