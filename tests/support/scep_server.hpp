// SPDX-License-Identifier: Apache-2.0
// A real SCEP CA for tests: Debian's scepserver (micromdm/scep) on
// 127.0.0.1, with a fresh depot in a temporary folder. The constructor
// creates the CA (scepserver ca -init), starts the server on a free port and
// waits until GetCACaps answers; the destructor stops it (by PID) and removes
// the folder. The server's output goes to DIR/scepserver.log.
//
// Facts about scepserver 2.1.0 the tests rely on:
//  - it answers GetCACert with the bare DER CA certificate and signs CertReps
//    with the CA key (the CA is its own RA);
//  - with -challenge it compares the CSR's challengePassword attribute;
//    a mismatch (or a verifier that exits non-zero) is a CertRep FAILURE with
//    failInfo badRequest; it never answers PENDING;
//  - it refuses a second certificate for the same subject DN unless the old
//    one expires within -allowrenew days (the fixture passes 0: always allow).
#pragma once

#include <string>
#include <sys/types.h>

namespace tokenprov::test {

inline constexpr const char* kScepServerBinary = "/usr/bin/scepserver";

class ScepServer {
public:
  struct Config {
    std::string challenge = "s3cret-challenge"; // empty: no -challenge (anything goes)
    // Text of a shell script passed as -csrverifierexec (written to DIR/verifier.sh,
    // mode 0755). The script gets the CSR on stdin and $TRANSACTIONID; exit 0 accepts.
    // Its own folder is "$(dirname "$0")", i.e. dir(). Empty: no verifier.
    std::string verifier_script;
    int allow_renew = 0; // -allowrenew; negative: leave the server's default (14)
  };

  ScepServer() : ScepServer(Config{}) {}
  explicit ScepServer(Config cfg);
  ~ScepServer();
  ScepServer(const ScepServer&) = delete;
  ScepServer& operator=(const ScepServer&) = delete;

  const std::string& url() const { return url_; }   // http://127.0.0.1:PORT/scep
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }   // the temporary folder
  std::string depot() const { return dir_ + "/depot"; }
  std::string ca_cert_path() const { return dir_ + "/depot/ca.pem"; }
  const std::string& ca_fingerprint() const { return fingerprint_; } // sha256 hex, lower case, of the CA DER
  const std::string& challenge() const { return cfg_.challenge; }
  std::string log() const;                          // the server's output so far
  // Number of certificates the CA has issued (lines of depot/index.txt).
  int issued_count() const;

  // A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, close).
  static int free_port();

private:
  void start_server();
  bool wait_ready(int seconds);
  void stop_server() noexcept;

  Config cfg_;
  std::string dir_, url_, fingerprint_;
  int port_ = 0;
  pid_t pid_ = -1;
};

} // namespace tokenprov::test
