# SPDX-License-Identifier: Apache-2.0
# One short libFuzzer run for CTest:
#   cmake -DFUZZER=... -DSEEDS=... -DWORK=... -DRUNS=N -DSECONDS=S [-DDICT=file] -P smoke.cmake
# WORK is made afresh from the seeds in SEEDS and is the only corpus
# directory the fuzzer writes to (the source tree stays untouched). A crash
# input is left in the artifacts/ directory next to WORK's parent.
foreach(v FUZZER SEEDS WORK RUNS SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "smoke.cmake: ${v} is not set")
  endif()
endforeach()

get_filename_component(name "${WORK}" NAME)
get_filename_component(parent "${WORK}" DIRECTORY)
get_filename_component(root "${parent}" DIRECTORY)
set(artifacts "${root}/artifacts")
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}" "${artifacts}")
file(GLOB seeds "${SEEDS}/*")
file(COPY ${seeds} DESTINATION "${WORK}")

set(dict_arg)
if(DEFINED DICT AND EXISTS "${DICT}")
  set(dict_arg "-dict=${DICT}")
endif()

execute_process(
  COMMAND "${FUZZER}" ${dict_arg} -runs=${RUNS} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1 -artifact_prefix=${artifacts}/${name}- "${WORK}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_${name} failed (exit ${rc}); the crash input is in ${artifacts}/")
endif()
