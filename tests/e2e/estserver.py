# SPDX-License-Identifier: Apache-2.0
"""The project's own EST server (RFC 7030) for the tests: Python's http.server over TLS on
127.0.0.1, a CA made with python3-cryptography, run in a thread of the test process and stopped
by the context manager.

    from estserver import EstServer

    with EstServer(user="dev", password="otp", dir=sb.dir) as est:
        tokenprov enroll --protocol est --est-url est.url --ca-bundle est.tls_ca_path ...

What it does (the tests rely on it):
  * TLS 1.2+ with a server certificate for IP 127.0.0.1 issued by its TLS root (tls_ca_path);
    a client certificate is asked for (optional) and verified against the EST CA.
  * GET  /.well-known/est/cacerts      base64 PKCS#7 certs-only: the EST CA certificate.
  * GET  /.well-known/est/csrattrs     base64 CsrAttrs: the OIDs in csrattrs (204 when empty); an entry
    that is bytes goes in as it is (an Attribute's DER: see ext_request_attr()).
  * POST /.well-known/est/simpleenroll HTTP Basic (user/password, 401 otherwise); base64 PKCS#10;
    answers 202 + Retry-After for the first `pending` requests, then 200 with base64 PKCS#7 of
    the certificate, valid `validity` seconds.
  * POST /.well-known/est/simplereenroll needs a TLS client certificate issued by the EST CA and
    not expired, whose subject equals the request's (403 otherwise); no password.
  * `csrs` keeps every request received (cryptography's CertificateSigningRequest).
  * `log` records each request: (method, path, auth user or None, client certificate serial or
    None, status).
"""

import base64
import datetime
import http.server
import os
import socket
import ssl
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID

PREFIX = "/.well-known/est/"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tokenprov EST tests")])


def _ca(cn, days=3650, issuer=None):
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(_name(cn))
         .issuer_name(issuer[0].subject if issuer else _name(cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(_now() - datetime.timedelta(hours=1))
         .not_valid_after(_now() + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True))
    cert = b.sign(issuer[1] if issuer else key, hashes.SHA256())
    return cert, key


def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    body = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        enc = [p & 0x7F]
        p >>= 7
        while p:
            enc.insert(0, 0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(enc)
    return b"\x06" + _der_len(len(body)) + body


def _der(tag, body):
    return bytes([tag]) + _der_len(len(body)) + body


def csrattrs_der(oids):
    return _der(0x30, b"".join(o if isinstance(o, bytes) else _der_oid(o) for o in oids))


def ext_request_attr(extensions):
    """A CsrAttrs entry asking for extensions with their values (RFC 8951 section 3.3): the Attribute
    extensionRequest { SET { Extensions } } of cryptography extension values (x509.KeyUsage(...))."""
    exts = b"".join(_der(0x30, _der_oid(e.oid.dotted_string) + _der(0x04, e.public_bytes())) for e in extensions)
    return _der(0x30, _der_oid("1.2.840.113549.1.9.14") + _der(0x31, _der(0x30, exts)))


class EstServer:
    def __init__(self, dir, user="est-user", password="est-pass", pending=0, retry_after=1, validity=86400,
                 csrattrs=(), untrusted_tls=False, reenroll_validity=None):
        self.dir = dir
        self.user, self.password = user, password
        self.pending = pending
        self.retry_after = retry_after
        self.validity = validity
        self.reenroll_validity = reenroll_validity or validity
        self.csrattrs = list(csrattrs)
        self.log = []
        self.issued = []
        self.csrs = []
        self.lock = threading.Lock()
        os.makedirs(dir, exist_ok=True)
        # The EST CA (issues the enrolled certificates, trusts client certificates).
        self.ca_cert, self.ca_key = _ca("EST Test CA")
        # The TLS side: its own root, and a server certificate for 127.0.0.1.
        self.tls_root, self.tls_root_key = _ca("EST TLS Root")
        skey = ec.generate_private_key(ec.SECP256R1())
        import ipaddress
        scert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(self.tls_root.subject)
                 .public_key(skey.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(_now() - datetime.timedelta(hours=1))
                 .not_valid_after(_now() + datetime.timedelta(days=30))
                 .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                 .sign(self.tls_root_key, hashes.SHA256()))
        if untrusted_tls:  # a server certificate from a root nobody is given: must get no request
            other, other_key = _ca("Unknown Root")
            scert = (x509.CertificateBuilder().subject_name(scert.subject).issuer_name(other.subject)
                     .public_key(skey.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(_now() - datetime.timedelta(hours=1))
                     .not_valid_after(_now() + datetime.timedelta(days=30))
                     .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                    critical=False)
                     .sign(other_key, hashes.SHA256()))
        self.tls_ca_path = self._write("tls-root.pem", self.tls_root.public_bytes(serialization.Encoding.PEM))
        self.ca_path = self._write("est-ca.pem", self.ca_cert.public_bytes(serialization.Encoding.PEM))
        self.server_cert_path = self._write("server.pem", scert.public_bytes(serialization.Encoding.PEM))
        self.server_key_path = self._write("server.key", skey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def _write(self, name, data):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    # --- issuing -----------------------------------------------------------------------------
    def issue(self, csr, validity, subject_must=None):
        if not csr.is_signature_valid:
            return None, "the request's signature does not verify"
        if subject_must is not None and csr.subject != subject_must:
            return None, "the request's subject is not the client certificate's"
        b = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.ca_cert.subject)
             .public_key(csr.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(_now() - datetime.timedelta(minutes=5))
             .not_valid_after(_now() + datetime.timedelta(seconds=validity))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            b = b.add_extension(san.value, critical=False)
        except x509.ExtensionNotFound:
            pass
        cert = b.sign(self.ca_key, hashes.SHA256())
        with self.lock:
            self.issued.append(cert)
        return cert, None

    def p7(self, certs):
        return base64.encodebytes(pkcs7.serialize_certificates(certs, serialization.Encoding.DER))

    # --- server ------------------------------------------------------------------------------
    def __enter__(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _client_cert(self):
                der = self.connection.getpeercert(binary_form=True)
                return x509.load_der_x509_certificate(der) if der else None

            def _send(self, status, body=b"", ctype="text/plain", headers=()):
                cc = self._client_cert()
                with server.lock:
                    server.log.append((self.command, self.path, getattr(self, "auth_user", None),
                                       cc.serial_number if cc else None, status))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if ctype.startswith("application/pkcs7") or ctype == "application/csrattrs":
                    self.send_header("Content-Transfer-Encoding", "base64")
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == PREFIX + "cacerts":
                    return self._send(200, server.p7([server.ca_cert]), "application/pkcs7-mime")
                if self.path == PREFIX + "csrattrs":
                    if not server.csrattrs:
                        return self._send(204)
                    return self._send(200, base64.encodebytes(csrattrs_der(server.csrattrs)), "application/csrattrs")
                return self._send(404, b"not found")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(n)
                if self.path == PREFIX + "simpleenroll":
                    auth = self.headers.get("Authorization", "")
                    ok = False
                    if auth.startswith("Basic "):
                        try:
                            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                            self.auth_user = u
                            ok = (u, p) == (server.user, server.password)
                        except Exception:
                            ok = False
                    if not ok:
                        return self._send(401, b"wrong credentials", headers=[("WWW-Authenticate", 'Basic realm="est"')])
                    with server.lock:
                        wait = server.pending > 0
                        if wait:
                            server.pending -= 1
                    if wait:
                        return self._send(202, b"pending", headers=[("Retry-After", str(server.retry_after))])
                    validity, subject_must = server.validity, None
                elif self.path == PREFIX + "simplereenroll":
                    cc = self._client_cert()
                    if cc is None:
                        return self._send(403, b"reenroll needs a client certificate")
                    if cc.issuer != server.ca_cert.subject:
                        return self._send(403, b"client certificate not from this CA")
                    try:
                        cc.verify_directly_issued_by(server.ca_cert)
                    except Exception:
                        return self._send(403, b"client certificate does not verify")
                    validity, subject_must = server.reenroll_validity, cc.subject
                else:
                    return self._send(404, b"not found")
                try:
                    csr = x509.load_der_x509_csr(base64.b64decode(data))
                except Exception:
                    return self._send(400, b"not a base64 PKCS#10 request")
                with server.lock:
                    server.csrs.append(csr)
                cert, why = server.issue(csr, validity, subject_must)
                if cert is None:
                    return self._send(403 if subject_must is not None else 400, why.encode())
                return self._send(200, server.p7([cert]), "application/pkcs7-mime; smime-type=certs-only")

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert_path, self.server_key_path)
        ctx.load_verify_locations(self.ca_path)
        ctx.verify_mode = ssl.CERT_OPTIONAL

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                sock.settimeout(30)
                return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

            def finish_request(self, request, client_address):
                try:
                    request.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    with server.lock:
                        server.log.append(("TLS", str(e), None, None, 0))
                    return
                super().finish_request(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d/.well-known/est" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)

    def requests(self, path_end):
        with self.lock:
            return [e for e in self.log if e[1].endswith(path_end)]

    def tls_failures(self):
        with self.lock:
            return [e for e in self.log if e[0] == "TLS"]
