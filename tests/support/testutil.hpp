// SPDX-License-Identifier: Apache-2.0
// General helpers for tests: temporary folders, software keys and a small
// certificate hierarchy made with OpenSSL, and running a program with its
// output captured (fork/exec, no shell).
#pragma once

#include "tokenprov/ossl.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace tokenprov::test {

// A fresh folder under $TMPDIR (mkdtemp), removed with all it holds when the
// object goes.
class TempDir {
public:
  explicit TempDir(const std::string& prefix = "tokenprov-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/NAME (nothing is created).
  std::string file(const std::string& name) const;
  // Writes DATA to path()/NAME with MODE and returns the path.
  std::string write(const std::string& name, std::string_view data, mode_t mode = 0600) const;
  std::string write(const std::string& name, std::span<const std::uint8_t> data, mode_t mode = 0600) const;

private:
  std::string path_;
};

// The whole file; throws std::runtime_error when it cannot be read.
std::vector<std::uint8_t> read_bytes(const std::string& path);
std::string read_text(const std::string& path);

enum class KeyAlg { Rsa2048, EcP256, EcP384, Ed25519 };
const char* key_alg_name(KeyAlg a);
ossl::EvpPkeyPtr make_key(KeyAlg alg);

// True when A and B are the same private key (public and private parts),
// whatever encoding they came from.
bool same_private_key(EVP_PKEY* a, EVP_PKEY* b);

struct CertOptions {
  bool ca = false;
  long valid_from_days = -1;          // notBefore relative to now
  long valid_days = 365;              // notAfter = notBefore + this
  std::vector<std::string> dns_names; // subjectAltName dNSName entries
};

// A v3 certificate for SUBJECT_KEY named SUBJECT_DN ("/CN=Alice/O=Example"),
// signed by ISSUER_KEY with SHA-256 (Ed25519: no digest). ISSUER null: self-signed
// (ISSUER_KEY must then be SUBJECT_KEY's private key). Random serial,
// basicConstraints, keyUsage, SKID and AKID set as a CA would.
ossl::X509Ptr issue_cert(const std::string& subject_dn, EVP_PKEY* subject_key, X509* issuer, EVP_PKEY* issuer_key,
                         const CertOptions& opts = {});

// A root CA, an intermediate CA under it and a leaf under that (EC P-256 CA
// keys; the leaf's key of LEAF_ALG). Subjects: "/CN=tokenprov Test Root CA/O=tokenprov tests",
// ".../CN=tokenprov Test Intermediate CA...", and LEAF_DN.
struct TestPki {
  ossl::EvpPkeyPtr root_key, intermediate_key, leaf_key;
  ossl::X509Ptr root, intermediate, leaf;
  // PEM files of the three certificates and the leaf key (unencrypted PKCS#8),
  // written into DIR.
  struct Files {
    std::string root, intermediate, leaf, leaf_key, chain; // chain: intermediate then root
  };
  Files write_pem(const TempDir& dir) const;
};
TestPki make_pki(KeyAlg leaf_alg, const std::string& leaf_dn = "/CN=Test Leaf/O=tokenprov tests");

struct ProcessResult {
  int status = -1; // exit status; 128+N when killed by signal N; 127: could not start
  std::string out; // stdout
  std::string err; // stderr
  std::string all() const { return out + err; }
};

// Runs ARGV (ARGV[0] looked up in $PATH when it has no '/') without a shell,
// with ENV_ADD ("NAME=value") added to the environment and STDIN_DATA on its
// standard input; waits for it and returns its status and output.
ProcessResult run_program(const std::vector<std::string>& argv, const std::vector<std::string>& env_add = {},
                          const std::string& stdin_data = {});

// The full path of NAME found in $PATH, or "" when it is not there.
std::string find_program(const std::string& name);

// Lower-case hex of DATA.
std::string hex(std::span<const std::uint8_t> data);

} // namespace tokenprov::test
