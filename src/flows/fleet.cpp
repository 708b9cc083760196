// SPDX-License-Identifier: Apache-2.0
// run_fleet(): one FleetRun (fleet_run.hpp: checks, named tokens, dry run,
// workers, rows; fleet_claims.cpp hands out tokens, fleet_recorder.cpp
// records rows, fleet_state.cpp keeps the state file).
#include "tokenprov/fleet.hpp"

#include "fleet_run.hpp"

namespace tokenprov {

FleetSummary run_fleet(const FleetRequest& req, const std::vector<ManifestRow>& rows) {
  fleet_detail::FleetRun run(req, rows);
  return run.run();
}

} // namespace tokenprov
