# ctest install_package: `cmake --install` the build tree into a fresh prefix, then configure, build
# and run tests/install/outside against it. Inputs: BUILD_DIR, OUTSIDE_DIR, WORK_DIR, GENERATOR,
# CXX_COMPILER, LAUNCHER (may be empty).
file(REMOVE_RECURSE "${WORK_DIR}")
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${what}: ${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()
run("install" ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
# Only the public API is installed: include/troupe/*.h, and no header there reaches an internal
# folder (config/, runtime/, actors/, net/, kernels/), so the outside build below can only compile
# against <troupe/...>.
set(_inc "${WORK_DIR}/prefix/include")
if(EXISTS "${_inc}/troupe/internal")
  message(FATAL_ERROR "the package installs internal headers: ${_inc}/troupe/internal exists")
endif()
file(GLOB_RECURSE _installed RELATIVE "${_inc}" "${_inc}/*")
foreach(_h IN LISTS _installed)
  if(NOT _h MATCHES "^troupe/[a-z_]+\\.h$")
    message(FATAL_ERROR "the package installs ${_h}: only include/troupe/*.h is public")
  endif()
  file(STRINGS "${_inc}/${_h}" _includes REGEX "^#include \"")
  foreach(_line IN LISTS _includes)
    if(NOT _line MATCHES "^#include \"troupe/[a-z_]+\\.h\"")
      message(FATAL_ERROR "${_h} includes an internal header: ${_line}")
    endif()
  endforeach()
endforeach()
set(_launcher "")
if(LAUNCHER)
  set(_launcher "-DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}")
endif()
run("configure" ${CMAKE_COMMAND} -S "${OUTSIDE_DIR}" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" -DCMAKE_BUILD_TYPE=Release
    ${_launcher})
run("build" ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
run("run" "${WORK_DIR}/build/outside")
