// Files written atomically: temp file in the target folder, fsync, rename.
#pragma once

#include "tokenprov/error.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <sys/types.h>

namespace tokenprov {

// Writes DATA to PATH through a temporary file in the same folder, fsync and
// rename; mode MODE (0600 for anything holding a key). An existing PATH is
// Error(Exists) unless FORCE. Unwritable folder, full disk: Error(BadInput)
// naming the path, and no file left behind. PATH "-" writes to stdout.
void write_file_atomic(const std::string& path, std::span<const std::uint8_t> data, mode_t mode, bool force);
void write_file_atomic(const std::string& path, const std::string& text, mode_t mode, bool force);

bool file_exists(const std::string& path);
// Whether PATH is a folder (following symbolic links).
bool is_directory(const std::string& path);
// The folder a file PATH would be written to: "." for a bare name.
std::string parent_folder(const std::string& path);

} // namespace tokenprov
