cmake_minimum_required(VERSION 3.21)
# ctest script: the system libraries declared for the static library
# (NHC_NATIVE_STATIC_LIBS) must include every one that rustc reports with
# --print native-static-libs. They all come from std (the dependencies
# bundle their C code), so an empty staticlib answers in a second instead of
# a rebuild of the whole library.
file(MAKE_DIRECTORY "${WORK_DIR}")
file(WRITE "${WORK_DIR}/empty.rs" "pub fn nothing() {}\n")
set(target_args "")
if(RUST_TARGET)
  set(target_args --target ${RUST_TARGET})
endif()
execute_process(
  COMMAND ${RUSTC} --crate-type staticlib --crate-name nhc_static_libs_probe ${target_args}
          --print native-static-libs -o "${WORK_DIR}/libprobe.a" "${WORK_DIR}/empty.rs"
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "rustc failed: ${err}")
endif()
if(NOT "${out}${err}" MATCHES "native-static-libs: ([^\n]*)")
  message(FATAL_ERROR "no native-static-libs line in: ${out}${err}")
endif()
string(REPLACE " " ";" wanted "${CMAKE_MATCH_1}")
set(missing "")
foreach(flag IN LISTS wanted)
  string(REGEX REPLACE "^-l" "" lib "${flag}")
  if(lib AND NOT lib IN_LIST DECLARED)
    list(APPEND missing ${lib})
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "NHC_NATIVE_STATIC_LIBS (${DECLARED}) lacks: ${missing} (rustc: ${CMAKE_MATCH_1})")
endif()
message(STATUS "native static libs OK: ${CMAKE_MATCH_1}")
