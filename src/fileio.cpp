#include "tokenprov/fileio.hpp"

#include "tokenprov/error.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
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
  std::string tmpl = dir + "/." + base + ".tmp-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkstemp(buf.data());
  if (fd < 0)
    fail(ExitCode::BadInput, "Cannot create a file in the folder '" + dir + "' for '" + path + "': " + std::strerror(errno) + ".",
         "Choose a folder that exists and that you can write to.");
  std::string tmp(buf.data());
  try {
    if (::fchmod(fd, mode) != 0) fail(ExitCode::BadInput, "Cannot set the mode of '" + tmp + "'.");
    write_all(fd, data, path);
    if (::fsync(fd) != 0)
      fail(ExitCode::BadInput, "Cannot flush '" + path + "' to disk: " + std::string(std::strerror(errno)) + ".");
    if (::close(fd) != 0) {
      fd = -1;
      fail(ExitCode::BadInput, "Cannot close '" + path + "': " + std::string(std::strerror(errno)) + ".");
    }
    fd = -1;
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
