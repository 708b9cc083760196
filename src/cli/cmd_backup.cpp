#include "common.hpp"

namespace tokenprov::cli {

void register_backup(CLI::App&, Global&, Registry&) {}

} // namespace tokenprov::cli
