# SPDX-License-Identifier: Apache-2.0
"""Reads a PKCS#12 through GnuTLS's import API (gnutls_pkcs12_simple_parse,
what GnuTLS-based programs call to load a PKCS#12), with ctypes."""
import ctypes
import ctypes.util

_lib = None


class Datum(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_uint)]


def lib():
    global _lib
    if _lib is None:
        _lib = ctypes.CDLL(ctypes.util.find_library("gnutls") or "libgnutls.so.30")
        _lib.gnutls_strerror.restype = ctypes.c_char_p
        _lib.gnutls_pk_algorithm_get_name.restype = ctypes.c_char_p
    return _lib


def _check(rv, what):
    if rv < 0:
        raise RuntimeError("%s: %s" % (what, lib().gnutls_strerror(rv).decode()))


def simple_parse(der, password):
    """{'algorithm': 'EC/ECDSA'|'RSA'|'EdDSA (Ed25519)', 'chain': n, 'extra': n, 'key_ok': bool}; raises on refusal."""
    g = lib()
    buf = ctypes.create_string_buffer(der, len(der))
    datum = Datum(ctypes.cast(buf, ctypes.c_void_p), len(der))
    p12 = ctypes.c_void_p()
    _check(g.gnutls_pkcs12_init(ctypes.byref(p12)), "gnutls_pkcs12_init")
    try:
        _check(g.gnutls_pkcs12_import(p12, ctypes.byref(datum), 0, 0), "gnutls_pkcs12_import")  # 0: DER
        pw = password.encode()
        _check(g.gnutls_pkcs12_verify_mac(p12, pw), "gnutls_pkcs12_verify_mac")
        key, chain, extra, crl = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        nchain, nextra = ctypes.c_uint(), ctypes.c_uint()
        _check(g.gnutls_pkcs12_simple_parse(p12, pw, ctypes.byref(key), ctypes.byref(chain), ctypes.byref(nchain),
                                            ctypes.byref(extra), ctypes.byref(nextra), ctypes.byref(crl), 0),
               "gnutls_pkcs12_simple_parse")
        alg = g.gnutls_x509_privkey_get_pk_algorithm(key)
        name = g.gnutls_pk_algorithm_get_name(alg).decode()
        key_ok = g.gnutls_x509_privkey_verify_params(key) == 0
        return {"algorithm": name, "chain": nchain.value, "extra": nextra.value, "key_ok": key_ok}
    finally:
        g.gnutls_pkcs12_deinit(p12)
