// SPDX-License-Identifier: Apache-2.0
// Files written atomically: temp file in the target folder, fsync, rename.
#pragma once

#include "tokenprov/error.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>
#include <sys/types.h>

namespace tokenprov {

// Writes DATA to PATH through a temporary file in the same folder, fsync and
// rename; mode MODE (0600 for anything holding a key). An existing PATH is
// Error(Exists) unless FORCE. Unwritable folder, full disk: Error(BadInput)
// naming the path, and no file left behind. PATH "-" writes to stdout.
void write_file_atomic(const std::string& path, std::span<const std::uint8_t> data, mode_t mode, bool force);
void write_file_atomic(const std::string& path, const std::string& text, mode_t mode, bool force);

// What an input file is, for read_input_file(): its name in messages and its size limit.
struct InputKind {
  const char* what;      // "certificate file", "manifest", ...: heads the messages
  std::size_t max_bytes; // larger files are refused (exit 5), never read into memory
  bool stdin_ok = false; // "-" reads standard input (where the command documents it)
};
namespace input {
inline constexpr InputKind certificate{"certificate file", 4u << 20};
inline constexpr InputKind ca_bundle{"CA bundle", 16u << 20};
inline constexpr InputKind pkcs12{"PKCS#12 file", 4u << 20};
inline constexpr InputKind manifest{"manifest", 64u << 20};
inline constexpr InputKind profile{"profile", 1u << 20};
inline constexpr InputKind secret{"secret file", 64u << 10};
} // namespace input

// The one way tokenprov reads an input file: PATH is opened with O_NONBLOCK
// (a FIFO never hangs the open), checked with fstat to be a regular file (not
// a folder, FIFO, socket or device such as /dev/zero) no larger than the
// kind's limit, then read whole. Anything else is Error(CODE) naming the file
// and what it is. "-" is standard input when the kind allows it.
std::vector<std::uint8_t> read_input_file(const std::string& path, const InputKind& kind,
                                          ExitCode code = ExitCode::BadInput);
// Opens PATH as read_input_file() does and returns the descriptor (O_NONBLOCK
// cleared), for readers that take the bytes themselves; the caller closes it.
int open_input_file(const std::string& path, const InputKind& kind, ExitCode code = ExitCode::BadInput);

// Removes the temporary files ".BASE.tmp-XXXXXX" in DIR that a killed run of
// write_file_atomic() left: only that exact naming, only regular files of this
// user, only untouched for kStaleTempSeconds, and only when no live run holds
// its lock on them (a writer locks its temporary file until it is renamed).
// write_file_atomic() calls it before writing PATH.
inline constexpr long kStaleTempSeconds = 60;
void remove_stale_temp_files(const std::string& dir, const std::string& base);

bool file_exists(const std::string& path);
// Whether PATH is a folder (following symbolic links).
bool is_directory(const std::string& path);
// The folder a file PATH would be written to: "." for a bare name.
std::string parent_folder(const std::string& path);

} // namespace tokenprov
