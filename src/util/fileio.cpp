// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/fileio.hpp"

#include "tokenprov/error.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <string_view>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

namespace tokenprov {

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string parent_folder(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

namespace {
std::string size_text(std::size_t n) {
  if (n >= (1u << 20) && n % (1u << 20) == 0) return std::to_string(n >> 20) + " MiB";
  if (n >= 1024 && n % 1024 == 0) return std::to_string(n >> 10) + " KiB";
  return std::to_string(n) + " bytes";
}

const char* file_type(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a regular file";
}
} // namespace

int open_input_file(const std::string& path, const InputKind& kind, ExitCode code) {
  std::string what = std::string("the ") + kind.what + " '" + path + "'";
  if (path.empty()) fail(code, std::string("No ") + kind.what + " was named (an empty path).");
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    fail(code, "Cannot open " + what + ": " + std::strerror(e) + ".",
         e == ENOENT ? "Check the path." : "Check the file's permissions.");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(code, "Cannot read " + what + ": " + std::strerror(e) + ".");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(code, "Cannot read " + what + ": it is " + file_type(st.st_mode) + ", not a regular file.",
         std::string("Give the path of a regular file") + (kind.stdin_ok ? " (or - for standard input)." : "."));
  }
  if (static_cast<std::uintmax_t>(st.st_size) > kind.max_bytes) {
    ::close(fd);
    fail(code, "Cannot read " + what + ": it is larger than the " + size_text(kind.max_bytes) + " a " + kind.what +
                   " may have (" + std::to_string(st.st_size) + " bytes).",
         "Check that this is the right file.");
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::vector<std::uint8_t> read_input_file(const std::string& path, const InputKind& kind, ExitCode code) {
  bool from_stdin = kind.stdin_ok && path == "-";
  int fd = from_stdin ? STDIN_FILENO : open_input_file(path, kind, code);
  std::string what = from_stdin ? std::string("the ") + kind.what + " from standard input"
                                : std::string("the ") + kind.what + " '" + path + "'";
  std::vector<std::uint8_t> out;
  std::uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      if (!from_stdin) ::close(fd);
      fail(code, "Cannot read " + what + ": " + std::strerror(e) + ".");
    }
    if (n == 0) break;
    // A regular file may grow while read; standard input is any stream.
    if (out.size() + static_cast<std::size_t>(n) > kind.max_bytes) {
      if (!from_stdin) ::close(fd);
      fail(code, "Cannot read " + what + ": it is larger than the " + size_text(kind.max_bytes) + " a " + kind.what +
                     " may have.",
           "Check that this is the right file.");
    }
    out.insert(out.end(), buf, buf + n);
  }
  if (!from_stdin) ::close(fd);
  return out;
}

namespace {
void write_all(int fd, std::span<const std::uint8_t> data, const std::string& path) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      fail(ExitCode::BadInput, "Cannot write '" + path + "': " + std::strerror(e) + ".",
           e == ENOSPC || e == EFBIG ? "Free some space (or choose another folder) and run again."
                                     : "Choose a folder you can write to.");
    }
    off += static_cast<std::size_t>(n);
  }
}
} // namespace

void remove_stale_temp_files(const std::string& dir, const std::string& base) {
  std::string prefix = "." + base + ".tmp-";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  time_t now = ::time(nullptr);
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    // Exactly our own naming: ".BASE.tmp-" and mkstemp's six characters.
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) continue;
    std::string p = dir + "/" + name;
    int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    // A regular file of ours, untouched for a while, that no live run holds (a writer keeps
    // its temporary file locked from creation to rename).
    bool stale = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
                 now - st.st_mtime >= kStaleTempSeconds && ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (stale) ::unlink(p.c_str());
    ::close(fd);
  }
  ::closedir(d);
}

void write_file_atomic(const std::string& path, std::span<const std::uint8_t> data, mode_t mode, bool force) {
  if (path == "-") {
    write_all(STDOUT_FILENO, data, "standard output");
    return;
  }
  if (!force && file_exists(path))
    fail(ExitCode::Exists, "The file '" + path + "' exists already; it was left as it is.",
         "Choose another path, or add --force to replace it.");
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  remove_stale_temp_files(dir, base); // what a killed run of ours left behind
  std::string tmpl = dir + "/." + base + ".tmp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkstemp(buf.data());
  if (fd < 0)
    fail(ExitCode::BadInput, "Cannot create a file in the folder '" + dir + "' for '" + path + "': " + std::strerror(errno) + ".",
         "Choose a folder that exists and that you can write to.");
  std::string tmp(buf.data());
  // Held until the file is in place: remove_stale_temp_files() in another run leaves it alone.
  ::flock(fd, LOCK_EX | LOCK_NB);
  try {
    if (::fchmod(fd, mode) != 0) fail(ExitCode::BadInput, "Cannot set the mode of '" + tmp + "'.");
    write_all(fd, data, path);
    if (::fsync(fd) != 0)
      fail(ExitCode::BadInput, "Cannot flush '" + path + "' to disk: " + std::string(std::strerror(errno)) + ".");
    if (!force) {
      // link() refuses an existing target, so a file that appeared meanwhile is not replaced.
      if (::link(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        if (e == EEXIST)
          fail(ExitCode::Exists, "The file '" + path + "' exists already; it was left as it is.",
               "Choose another path, or add --force to replace it.");
        if (::rename(tmp.c_str(), path.c_str()) != 0)
          fail(ExitCode::BadInput, "Cannot move the new file into place as '" + path + "': " + std::strerror(errno) + ".");
      } else {
        ::unlink(tmp.c_str());
      }
    } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
      fail(ExitCode::BadInput, "Cannot move the new file into place as '" + path + "': " + std::strerror(errno) + ".");
    }
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    int rc = ::close(fd); // the data was fsync'ed: a close error loses nothing
    fd = -1;
    (void)rc;
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
}

void write_file_atomic(const std::string& path, const std::string& text, mode_t mode, bool force) {
  write_file_atomic(path, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()),
                    mode, force);
}

} // namespace tokenprov
