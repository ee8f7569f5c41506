# edgec's CMake package: `find_package(edgec CONFIG REQUIRED)` with -Dedgec_DIR=$(edgec --cmake-dir)
# (or that directory on CMAKE_PREFIX_PATH), then
#
#   edgec_add_model(<name> MODEL model.onnx TARGET armv8 [QUANTIZE int8]
#                   [OPTIONS --input-shape x=1,3,224,224 ...] [EDGEC /path/to/edgec])
#
# compiles MODEL with `edgec compile --bundle --depfile` into ${CMAKE_CURRENT_BINARY_DIR}/<name>.edgec
# and creates the INTERFACE library target <name>: link a C/C++ program against it to get
#   - the include directories of the artifact's model.h and the bundle's edgec_runtime.h,
#   - -ledgec_runtime from the bundle (which loads the bundle's libtvm_runtime.so and libtvm_ffi.so),
#     with the bundle directory as rpath (the build tree's binaries run as they are),
#   - the compile definitions EDGEC_MODEL_<NAME>_SO and EDGEC_MODEL_<NAME>_BUNDLE_DIR: the paths of
#     the bundle's model.so and of the bundle directory (<NAME>: <name> upper-cased, characters
#     other than letters, digits and '_' as '_'), for edgec_load() at run time.
# The artifact is rebuilt when the model or a file it depends on changes (the depfile: external
# data, plugins, calibration data, --records, --config) or when the options change. Needs
# CMake >= 3.20 (DEPFILE of add_custom_command with Ninja and Makefile generators).
# Variables set: edgec_FOUND, EDGEC_EXECUTABLE (cache; the default of EDGEC), edgec_VERSION.
# Documentation: docs/build-systems.md of the edgec repository.

if(CMAKE_VERSION VERSION_LESS 3.20)
  message(FATAL_ERROR "edgec's CMake package needs CMake >= 3.20 (DEPFILE of add_custom_command), this is ${CMAKE_VERSION}")
endif()
include_guard(GLOBAL)
# find_package gives this file its own policy scope; edgec_add_model keeps these settings
# (CMP0116: Ninja reads the depfile's paths as relative to this directory) whatever the caller's
# cmake_minimum_required says
cmake_policy(VERSION 3.20...3.31)

set(edgec_VERSION "0.1.0")

# The `edgec` program: beside this package in a virtual environment (site-packages/edgec/cmake
# -> bin/), else on PATH.
find_program(EDGEC_EXECUTABLE NAMES edgec
  HINTS "${CMAKE_CURRENT_LIST_DIR}/../../../../../bin" "${CMAKE_CURRENT_LIST_DIR}/../../../../../Scripts"
  DOC "The edgec compiler (edgec_add_model's default EDGEC)")

function(edgec_add_model name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "MODEL;TARGET;QUANTIZE;EDGEC;CONFIG" "OPTIONS")
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "edgec_add_model(${name}): unknown arguments: ${arg_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT arg_MODEL)
    message(FATAL_ERROR "edgec_add_model(${name}): MODEL is required")
  endif()
  if(NOT arg_TARGET)
    set(arg_TARGET host)
  endif()
  set(edgec "${arg_EDGEC}")
  if(NOT edgec)
    set(edgec "${EDGEC_EXECUTABLE}")
  endif()
  if(NOT edgec)
    message(FATAL_ERROR "edgec_add_model(${name}): the edgec program was not found: pass EDGEC or set EDGEC_EXECUTABLE")
  endif()
  cmake_path(ABSOLUTE_PATH arg_MODEL BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" NORMALIZE OUTPUT_VARIABLE model)

  set(art "${CMAKE_CURRENT_BINARY_DIR}/${name}.edgec")
  set(depfile "${CMAKE_CURRENT_BINARY_DIR}/${name}.edgec.d")
  set(cmd "${edgec}" compile "${model}" -o "${art}" --target "${arg_TARGET}" --bundle --depfile "${depfile}")
  if(arg_QUANTIZE)
    list(APPEND cmd --quantize "${arg_QUANTIZE}")
  endif()
  if(arg_CONFIG)
    cmake_path(ABSOLUTE_PATH arg_CONFIG BASE_DIRECTORY "${CMAKE_CURRENT_SOURCE_DIR}" NORMALIZE OUTPUT_VARIABLE config)
    list(APPEND cmd --config "${config}")
  endif()
  list(APPEND cmd ${arg_OPTIONS})

  # The command line as a file whose content changes exactly when an option does (written only
  # then): the Makefile generators do not rerun a command whose text changed, this dependency does.
  string(REPLACE ";" "\n" cmd_text "${cmd}")
  file(CONFIGURE OUTPUT "${art}.options" CONTENT "${cmd_text}\n" @ONLY)

  set(bundle "${art}/bundle")
  # Outputs: files of the artifact's top directory only (a build tool creates the directories of
  # declared outputs, and edgec writes its artifact directory only when it is empty or an artifact).
  add_custom_command(
    OUTPUT "${art}/metadata.json"
    BYPRODUCTS "${art}/model.so" "${art}/model.h"
    # the directory belongs to this rule: a partial one (a Makefile generator deletes the stale
    # output metadata.json when the rule changed) is not an artifact edgec would replace
    COMMAND "${CMAKE_COMMAND}" -E rm -rf "${art}"
    COMMAND ${cmd}
    DEPENDS "${model}" "${art}.options"
    DEPFILE "${depfile}"
    COMMENT "edgec: compiling ${arg_MODEL} for ${arg_TARGET}"
    VERBATIM)
  add_custom_target(${name}_edgec_artifact DEPENDS "${art}/metadata.json")

  string(MAKE_C_IDENTIFIER "${name}" id)
  string(TOUPPER "${id}" id)
  add_library(${name} INTERFACE)
  add_dependencies(${name} ${name}_edgec_artifact)
  target_include_directories(${name} INTERFACE "${art}" "${bundle}")
  # -L/-l, not file paths: the bundle's files are not declared outputs (see above); they are
  # loaded at run time (build-tree rpath), and libedgec_runtime.so names the TVM libraries
  # (DT_NEEDED), which the linker finds through -rpath-link
  target_link_directories(${name} INTERFACE "${bundle}")
  target_link_libraries(${name} INTERFACE -ledgec_runtime)
  target_link_options(${name} INTERFACE "LINKER:-rpath,${bundle}" "LINKER:-rpath-link,${bundle}")
  target_compile_definitions(${name} INTERFACE
    "EDGEC_MODEL_${id}_SO=\"${bundle}/model.so\"" "EDGEC_MODEL_${id}_BUNDLE_DIR=\"${bundle}\"")
  set_target_properties(${name} PROPERTIES EDGEC_ARTIFACT_DIR "${art}" EDGEC_BUNDLE_DIR "${bundle}")
endfunction()
