// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the fleet manifest reader (tokenprov::read_manifest in
// src/flows/fleet.cpp: libcsv, then the checks of every row).
//
// read_manifest takes a path, so each input is written to one memfd (kept for
// the whole run) and read back through /proc/self/fd/N: no file system
// traffic, nothing left behind. Bad input must end in tokenprov::Error.
#include "tokenprov/error.hpp"
#include "tokenprov/fleet.hpp"

#include <openssl/err.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// The memfd every input goes to, and its path.
struct Input {
  int fd = -1;
  std::string path;
  Input() {
    fd = memfd_create("fuzz-manifest.csv", MFD_CLOEXEC);
    if (fd < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path = "/proc/self/fd/" + std::to_string(fd);
  }
};

const Input& input() {
  static const Input in;
  return in;
}

void put(const std::uint8_t* data, std::size_t size) {
  const int fd = input().fd;
  if (ftruncate(fd, 0) != 0) {
    std::perror("ftruncate");
    std::abort();
  }
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) {
      std::perror("pwrite");
      std::abort();
    }
    done += static_cast<std::size_t>(n);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  put(data, size);
  try {
    auto rows = tokenprov::read_manifest(input().path);
    (void)rows;
  } catch (const tokenprov::Error&) {
  }
  ERR_clear_error();
  return 0;
}
