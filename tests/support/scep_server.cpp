// SPDX-License-Identifier: Apache-2.0
#include "support/scep_server.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace tokenprov::test {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// fork/exec ARGV with stdout+stderr appended to LOG; returns the child's PID.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // The server must not outlive a test run that crashes.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (devnull < 0 || fd < 0) _exit(127);
    dup2(devnull, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

// GET /scep?operation=GetCACaps on 127.0.0.1:PORT; true on "200".
bool caps_answer(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET /scep?operation=GetCACaps HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      char buf[256];
      ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
      if (n > 0) {
        buf[n] = 0;
        ok = std::strncmp(buf, "HTTP/1.", 7) == 0 && std::strstr(buf, " 200 ") != nullptr;
      }
    }
  }
  close(fd);
  return ok;
}

} // namespace

int ScepServer::free_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    throw std::runtime_error(std::string("cannot find a free port: ") + std::strerror(errno));
  }
  close(fd);
  return ntohs(a.sin_port);
}

ScepServer::ScepServer(Config cfg) : cfg_(std::move(cfg)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tokenprov-scep-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  try {
    std::string log = dir_ + "/scepserver.log";
    int rc = wait_exit(spawn({kScepServerBinary, "ca", "-init", "-depot", depot(), "-keySize", "2048", "-years",
                              "2", "-organization", "tokenprov-test", "-country", "US"},
                             log));
    if (rc != 0) throw std::runtime_error("scepserver ca -init failed (" + std::to_string(rc) + "): " + this->log());

    FILE* f = std::fopen(ca_cert_path().c_str(), "r");
    if (!f) throw std::runtime_error("no " + ca_cert_path());
    X509* ca = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    if (!ca) throw std::runtime_error("cannot read " + ca_cert_path());
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    X509_digest(ca, EVP_sha256(), md, &mdlen);
    X509_free(ca);
    static const char* hexd = "0123456789abcdef";
    for (unsigned i = 0; i < mdlen; ++i) {
      fingerprint_.push_back(hexd[md[i] >> 4]);
      fingerprint_.push_back(hexd[md[i] & 15]);
    }

    if (!cfg_.verifier_script.empty()) {
      std::string path = dir_ + "/verifier.sh";
      std::ofstream(path) << cfg_.verifier_script;
      chmod(path.c_str(), 0755);
    }
    start_server();
  } catch (...) {
    stop_server();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw;
  }
}

void ScepServer::start_server() {
  // The port can be taken between free_port() and the server's bind: retry.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_port();
    std::vector<std::string> argv = {kScepServerBinary, "-depot", depot(), "-port", std::to_string(port_)};
    if (!cfg_.challenge.empty()) {
      argv.push_back("-challenge");
      argv.push_back(cfg_.challenge);
    }
    if (!cfg_.verifier_script.empty()) {
      argv.push_back("-csrverifierexec");
      argv.push_back(dir_ + "/verifier.sh");
    }
    if (cfg_.allow_renew >= 0) {
      argv.push_back("-allowrenew");
      argv.push_back(std::to_string(cfg_.allow_renew));
    }
    pid_ = spawn(argv, dir_ + "/scepserver.log");
    if (wait_ready(10)) {
      url_ = "http://127.0.0.1:" + std::to_string(port_) + "/scep";
      return;
    }
    stop_server();
  }
  throw std::runtime_error("scepserver did not start: " + log());
}

bool ScepServer::wait_ready(int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) { // it exited (port taken, bad flag...)
      pid_ = -1;
      return false;
    }
    if (caps_answer(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void ScepServer::stop_server() noexcept {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) { // 2 s, then SIGKILL
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  int st = 0;
  waitpid(pid_, &st, 0);
  pid_ = -1;
}

ScepServer::~ScepServer() {
  stop_server();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string ScepServer::log() const { return slurp(dir_ + "/scepserver.log"); }

int ScepServer::issued_count() const {
  std::string idx = slurp(depot() + "/index.txt");
  int n = 0;
  for (char c : idx)
    if (c == '\n') ++n;
  return n;
}

} // namespace tokenprov::test
