// SPDX-License-Identifier: Apache-2.0
#include "support/testutil.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace tokenprov::test {

namespace {

[[noreturn]] void ssl_fail(const std::string& what) {
  throw std::runtime_error(what + ": " + ossl::last_error());
}

using BnPtr = std::unique_ptr<BIGNUM, ossl::Deleter<BN_clear_free>>;

} // namespace

// ---- files -------------------------------------------------------------

TempDir::TempDir(const std::string& prefix) {
  std::string templ = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed: " + std::string(std::strerror(errno)));
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TempDir::file(const std::string& name) const {
  return path_ + "/" + name;
}

std::string TempDir::write(const std::string& name, std::string_view data, mode_t mode) const {
  std::string p = file(name);
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + p + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + p + ": " + std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fchmod(fd, mode);
  ::close(fd);
  return p;
}

std::string TempDir::write(const std::string& name, std::span<const std::uint8_t> data, mode_t mode) const {
  return write(name, std::string_view(reinterpret_cast<const char*>(data.data()), data.size()), mode);
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string read_text(const std::string& path) {
  auto b = read_bytes(path);
  return std::string(b.begin(), b.end());
}

std::string hex(std::span<const std::uint8_t> data) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (auto b : data) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

// ---- keys and certificates ---------------------------------------------

const char* key_alg_name(KeyAlg a) {
  switch (a) {
  case KeyAlg::Rsa2048:
    return "RSA-2048";
  case KeyAlg::EcP256:
    return "EC P-256";
  case KeyAlg::EcP384:
    return "EC P-384";
  case KeyAlg::Ed25519:
    return "Ed25519";
  }
  return "?";
}

ossl::EvpPkeyPtr make_key(KeyAlg alg) {
  EVP_PKEY* k = nullptr;
  switch (alg) {
  case KeyAlg::Rsa2048:
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    break;
  case KeyAlg::EcP256:
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    break;
  case KeyAlg::EcP384:
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
    break;
  case KeyAlg::Ed25519:
    k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    break;
  }
  if (!k) ssl_fail(std::string("cannot generate a ") + key_alg_name(alg) + " key");
  return ossl::EvpPkeyPtr(k);
}

bool same_private_key(EVP_PKEY* a, EVP_PKEY* b) {
  if (!a || !b || EVP_PKEY_eq(a, b) != 1) {
    ERR_clear_error();
    return false;
  }
  // RSA: the private exponent; EC: the private scalar.
  for (const char* param : {OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_PRIV_KEY}) {
    BIGNUM* x = nullptr;
    BIGNUM* y = nullptr;
    if (EVP_PKEY_get_bn_param(a, param, &x) == 1) {
      BnPtr px(x);
      if (EVP_PKEY_get_bn_param(b, param, &y) != 1) return false;
      BnPtr py(y);
      return BN_cmp(px.get(), py.get()) == 0;
    }
    ERR_clear_error();
  }
  // Ed25519 and friends: the raw private key.
  std::size_t la = 0, lb = 0;
  if (EVP_PKEY_get_raw_private_key(a, nullptr, &la) != 1 || EVP_PKEY_get_raw_private_key(b, nullptr, &lb) != 1 ||
      la != lb) {
    ERR_clear_error();
    return false;
  }
  std::vector<unsigned char> ra(la), rb(lb);
  bool same = EVP_PKEY_get_raw_private_key(a, ra.data(), &la) == 1 &&
              EVP_PKEY_get_raw_private_key(b, rb.data(), &lb) == 1 && ra == rb;
  OPENSSL_cleanse(ra.data(), ra.size());
  OPENSSL_cleanse(rb.data(), rb.size());
  return same;
}

namespace {

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) ssl_fail("cannot make extension " + std::string(OBJ_nid2sn(nid)) + "=" + value);
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ok) ssl_fail("cannot add an extension");
}

bool is_edwards(EVP_PKEY* k) {
  return EVP_PKEY_is_a(k, "ED25519") || EVP_PKEY_is_a(k, "ED448");
}

} // namespace

ossl::X509Ptr issue_cert(const std::string& subject_dn, EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* issuer_key,
                         const CertOptions& opts) {
  ossl::X509Ptr cert(X509_new());
  if (!cert || !X509_set_version(cert.get(), X509_VERSION_3)) ssl_fail("X509_new");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) ssl_fail("RAND_bytes");
  serial[0] &= 0x7f; // positive
  serial[0] |= 0x40; // and 16 bytes long
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()))) ssl_fail("serial");
  ossl::X509NamePtr name = ossl::parse_dn(subject_dn);
  X509_set_subject_name(cert.get(), name.get());
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name.get());
  if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), opts.valid_from_days * 86400L) ||
      !X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(opts.valid_from_days + opts.valid_days), 0,
                        nullptr))
    ssl_fail("validity");
  if (!X509_set_pubkey(cert.get(), subject_key)) ssl_fail("X509_set_pubkey");

  if (opts.ca) {
    add_ext(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert.get(), issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(cert.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(cert.get(), issuer, NID_key_usage,
            EVP_PKEY_is_a(subject_key, "RSA") ? "critical,digitalSignature,keyEncipherment"
                                              : "critical,digitalSignature");
    add_ext(cert.get(), issuer, NID_ext_key_usage, "clientAuth,emailProtection");
  }
  add_ext(cert.get(), issuer, NID_subject_key_identifier, "hash");
  add_ext(cert.get(), issuer, NID_authority_key_identifier, "keyid:always");
  if (!opts.dns_names.empty()) {
    std::string san;
    for (const auto& d : opts.dns_names)
      san += (san.empty() ? "DNS:" : ",DNS:") + d;
    add_ext(cert.get(), issuer, NID_subject_alt_name, san);
  }
  const EVP_MD* md = is_edwards(issuer_key) ? nullptr : EVP_sha256();
  if (X509_sign(cert.get(), issuer_key, md) <= 0) ssl_fail("X509_sign");
  return cert;
}

TestPki make_pki(KeyAlg leaf_alg, const std::string& leaf_dn) {
  TestPki p;
  p.root_key = make_key(KeyAlg::EcP256);
  p.intermediate_key = make_key(KeyAlg::EcP256);
  p.leaf_key = make_key(leaf_alg);
  CertOptions ca;
  ca.ca = true;
  ca.valid_days = 3650;
  p.root = issue_cert("/CN=tokenprov Test Root CA/O=tokenprov tests", p.root_key.get(), nullptr, p.root_key.get(), ca);
  p.intermediate = issue_cert("/CN=tokenprov Test Intermediate CA/O=tokenprov tests", p.intermediate_key.get(),
                              p.root.get(), p.root_key.get(), ca);
  p.leaf = issue_cert(leaf_dn, p.leaf_key.get(), p.intermediate.get(), p.intermediate_key.get());
  return p;
}

TestPki::Files TestPki::write_pem(const TempDir& dir) const {
  Files f;
  f.root = dir.write("root.pem", ossl::to_pem(root.get()));
  f.intermediate = dir.write("intermediate.pem", ossl::to_pem(intermediate.get()));
  f.leaf = dir.write("leaf.pem", ossl::to_pem(leaf.get()));
  f.chain = dir.write("chain.pem", ossl::to_pem(intermediate.get()) + ossl::to_pem(root.get()));
  ossl::BioPtr b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(b.get(), leaf_key.get(), nullptr, nullptr, 0, nullptr, nullptr))
    ssl_fail("PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  f.leaf_key = dir.write("leaf.key", std::string_view(data, static_cast<std::size_t>(n)));
  return f;
}

// ---- processes ---------------------------------------------------------

std::string find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : std::string();
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string d;
  while (std::getline(dirs, d, ':')) {
    if (d.empty()) d = ".";
    std::string p = d + "/" + name;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0) return p;
  }
  return {};
}

ProcessResult run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env_add,
                          const std::string& stdin_data) {
  if (argv.empty()) throw std::invalid_argument("run_program: empty argv");
  ProcessResult r;
  std::string exe = find_program(argv[0]);
  if (exe.empty()) {
    r.status = 127;
    r.err = argv[0] + ": not found in PATH\n";
    return r;
  }
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (const auto& e : env_add)
      ::putenv(const_cast<char*>(e.c_str()));
    ::execv(exe.c_str(), args.data());
    const char msg[] = "exec failed\n";
    [[maybe_unused]] ssize_t n = ::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);

  // Feed stdin and drain stdout/stderr together so no pipe fills up.
  std::size_t fed = 0;
  int in_fd = in[1];
  if (stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  int out_fd = out[0], err_fd = err[0];
  sighandler_t old_pipe = ::signal(SIGPIPE, SIG_IGN);
  while (out_fd >= 0 || err_fd >= 0 || in_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (in_fd >= 0) fds[n++] = pollfd{in_fd, POLLOUT, 0};
    if (out_fd >= 0) fds[n++] = pollfd{out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = pollfd{err_fd, POLLIN, 0};
    if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = ::write(in_fd, stdin_data.data() + fed, stdin_data.size() - fed);
        if (w > 0) fed += static_cast<std::size_t>(w);
        if (w < 0 && errno != EINTR && errno != EAGAIN) fed = stdin_data.size();
        if (fed == stdin_data.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[4096];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      std::string& dst = fds[i].fd == out_fd ? r.out : r.err;
      if (got > 0) {
        dst.append(buf, static_cast<std::size_t>(got));
      } else {
        ::close(fds[i].fd);
        (fds[i].fd == out_fd ? out_fd : err_fd) = -1;
      }
    }
  }
  ::signal(SIGPIPE, old_pipe);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return r;
}

} // namespace tokenprov::test
