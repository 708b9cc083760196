#include "common.hpp"

namespace tokenprov::cli {

void register_pickup(CLI::App&, Global&, Registry&) {}

} // namespace tokenprov::cli
