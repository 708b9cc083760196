// SPDX-License-Identifier: Apache-2.0
#include "cert_dir.hpp"

#include "tokenprov/error.hpp"
#include "tokenprov/fileio.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <dirent.h>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sys/stat.h>

namespace tokenprov::cert_dir {

namespace {

// What --cert-dir's files hold, read once per process: the raw bytes and the
// DER of each PEM block, per file, kept while the file's identity, size and
// modification time stay the same. A fleet looks for every token's key in the
// same folder of answers; reading and decoding every file again for every key
// made a fleet quadratic in its size.
struct FileBlobs {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  struct timespec mtime {};
  std::vector<ossl::Bytes> blobs; // the file's bytes, then each PEM block's DER
};

// The process-wide cache: the fleet's workers share it, under its mutex.
class BlobCache {
public:
  std::shared_ptr<const FileBlobs> get(const std::string& path, const struct stat& st) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = files_.find(path);
    if (it != files_.end() && same(*it->second, st)) return it->second;
    return nullptr;
  }
  void put(const std::string& path, std::shared_ptr<const FileBlobs> f) {
    std::lock_guard<std::mutex> lock(mutex_);
    files_[path] = std::move(f);
  }

private:
  static bool same(const FileBlobs& f, const struct stat& st) {
    return f.dev == st.st_dev && f.ino == st.st_ino && f.size == st.st_size && f.mtime.tv_sec == st.st_mtim.tv_sec &&
           f.mtime.tv_nsec == st.st_mtim.tv_nsec;
  }
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const FileBlobs>> files_;
};

BlobCache& cache() {
  static BlobCache c;
  return c;
}

std::shared_ptr<const FileBlobs> file_blobs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  if (auto hit = cache().get(path, st)) return hit;
  auto f = std::make_shared<FileBlobs>();
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->size = st.st_size;
  f->mtime = st.st_mtim;
  try {
    f->blobs.push_back(read_input_file(path, input::certificate));
  } catch (const Error&) {
    return nullptr;
  }
  const ossl::Bytes& data = f->blobs.front();
  ossl::BioPtr b(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  char *name = nullptr, *header = nullptr;
  unsigned char* der = nullptr;
  long len = 0;
  while (b && PEM_read_bio(b.get(), &name, &header, &der, &len) == 1) {
    f->blobs.emplace_back(der, der + len);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
  }
  ERR_clear_error();
  cache().put(path, f);
  return f;
}

// Whether the file at PATH visibly carries the public key WANT (DER
// SubjectPublicKeyInfo): its bytes, or a PEM block's, contain WANT. Cheap next
// to parsing it: OpenSSL 3 decodes the key of every certificate it parses.
bool may_hold_key(const std::string& path, const ossl::Bytes& want) {
  auto f = file_blobs(path);
  if (!f) return false;
  std::boyer_moore_horspool_searcher search(want.begin(), want.end());
  return std::any_of(f->blobs.begin(), f->blobs.end(), [&](const ossl::Bytes& b) {
    return std::search(b.begin(), b.end(), search) != b.end(); // DER, PKCS#7, or a PEM block
  });
}

} // namespace

std::vector<std::string> list(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail(ExitCode::BadInput, "Cannot read the folder '" + dir + "'.", "Check --cert-dir.");
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n[0] == '.') continue;
    out.push_back(dir + "/" + n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> files_for(const std::string& dir, const ossl::Bytes& want) {
  auto files = list(dir);
  std::vector<char> likely(files.size());
  for (std::size_t i = 0; i < files.size(); ++i)
    likely[i] = may_hold_key(files[i], want);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < files.size(); ++i)
    if (likely[i]) out.push_back(files[i]);
  for (std::size_t i = 0; i < files.size(); ++i)
    if (!likely[i]) out.push_back(files[i]);
  return out;
}

} // namespace tokenprov::cert_dir
