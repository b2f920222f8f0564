# troupe_library(NAME DIR ...): one static library per top-level folder, made of every .cpp in it.
# Folders grow by adding files; no list to keep in sync.
function(troupe_folder_library name)
  cmake_parse_arguments(ARG "" "" "LINK;CUDA_SOURCES" ${ARGN})
  file(GLOB _srcs CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*.cpp")
  add_library(${name} STATIC ${_srcs} ${ARG_CUDA_SOURCES})
  # Internal headers are found from the source root and never installed; the public API
  # (include/troupe/*.h, which internal headers build on) is the only include path installed.
  target_include_directories(${name} PUBLIC "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>"
                                            "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>"
                                            "$<INSTALL_INTERFACE:include>")
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  target_link_libraries(${name} PUBLIC ${ARG_LINK})
  target_compile_definitions(${name} PRIVATE TROUPE_VERSION_STRING="${PROJECT_VERSION}")
endfunction()
