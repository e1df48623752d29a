# Read by cpack for each generator (CPACK_PROJECT_CONFIG_FILE): refuse a Debian package that would not work as installed.
if(CPACK_GENERATOR STREQUAL "DEB" AND NOT CPACK_INSTALL_PREFIX STREQUAL "/usr")
  # The unit's ExecStart and EnvironmentFile were configured for this prefix,
  # and Debian packages do not install into /usr/local or /opt.
  message(FATAL_ERROR "cpack -G DEB: this tree's install prefix is ${CPACK_INSTALL_PREFIX}; "
                      "configure it with -DCMAKE_INSTALL_PREFIX=/usr (the default; scripts/package.sh does)")
endif()
