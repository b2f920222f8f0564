# The installable package: the folder libraries, the public headers (include/troupe/*.h) and
# nothing else (internal headers are not installed: the public API stands on its own types), an
# umbrella target troupe::troupe, and troupeConfig.cmake, which finds the dependencies the build did.
include(CMakePackageConfigHelpers)
include(GNUInstallDirs)

add_library(troupe_all INTERFACE)
set_target_properties(troupe_all PROPERTIES EXPORT_NAME troupe)
target_link_libraries(troupe_all INTERFACE troupe_net troupe_actors troupe_runtime troupe_config)
target_compile_features(troupe_all INTERFACE cxx_std_20)
add_library(troupe::troupe ALIAS troupe_all)

set(_troupe_libs troupe_config troupe_runtime troupe_actors troupe_net)
if(TARGET troupe_kernels)
  list(APPEND _troupe_libs troupe_kernels)
endif()
install(TARGETS ${_troupe_libs} troupe_all EXPORT troupeTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/troupe" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/troupe)
install(EXPORT troupeTargets NAMESPACE troupe:: DESTINATION ${_cmake_dir})
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/troupeConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/troupeConfig.cmake" INSTALL_DESTINATION ${_cmake_dir})
write_basic_package_version_file("${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake"
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/troupeConfig.cmake" "${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake"
        DESTINATION ${_cmake_dir})
