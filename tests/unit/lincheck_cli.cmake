# Run cord-lincheck once and check its exit status and output.
#   CMD        the cord-lincheck binary
#   FILE       history file; "-" feeds the sequential_ok fixture on stdin;
#              empty passes no file at all
#   EXPECT_RC  expected exit status
#   PATTERN    regular expression expected in stdout followed by stderr
#   ARGS       extra options, separated by spaces
separate_arguments(args UNIX_COMMAND "${ARGS}")
get_filename_component(data_dir "${CMAKE_CURRENT_LIST_DIR}/lincheck_data" ABSOLUTE)
if(FILE STREQUAL "-")
  execute_process(COMMAND ${CMD} ${args} -
    INPUT_FILE "${data_dir}/sequential_ok.jsonl"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
elseif(FILE STREQUAL "")
  execute_process(COMMAND ${CMD} ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
else()
  execute_process(COMMAND ${CMD} ${args} ${FILE}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
endif()
message("exit status: ${rc}\nstdout:\n${out}stderr:\n${err}")
if(NOT rc STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "expected exit status ${EXPECT_RC}, got ${rc}")
endif()
if(NOT PATTERN STREQUAL "")
  if(NOT "${out}${err}" MATCHES "${PATTERN}")
    message(FATAL_ERROR "output does not match: ${PATTERN}")
  endif()
endif()
