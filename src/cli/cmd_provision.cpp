#include "common.hpp"

namespace tokenprov::cli {

void register_provision(CLI::App&, Global&, Registry&) {}

} // namespace tokenprov::cli
