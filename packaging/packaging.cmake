# Install rules and the Debian package (`cpack -G DEB` in a build tree; scripts/package.sh wraps it).
#
# The package: /usr/bin/kvnode, kvnode(1), the systemd unit kvnode.service
# (flags from /etc/default/kvnode, or /etc/consensuskv/kvnode.conf), the docs;
# its maintainer scripts (packaging/postinst, prerm, postrm) make the system
# user consensuskv and /var/lib/consensuskv. docs/operations.md, "Installing
# the Debian package", is the operator's side of this file.

# The package is the way this project is installed, and Debian's place for a
# packaged program is /usr: make that the default, as dh_auto_configure does.
# GNUInstallDirs then puts configuration in /etc (not /usr/etc).
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix" FORCE)
endif()
include(GNUInstallDirs)

set(CKV_VERSION "0.1.0" CACHE STRING "Package version (scripts/package.sh passes one derived from git)")
set(CKV_SYSTEMD_UNIT_DIR /lib/systemd/system CACHE PATH "Where kvnode.service is installed (Debian 12's place)")

set(CKV_BIN_DIR ${CMAKE_INSTALL_FULL_BINDIR})
set(CKV_DOC_DIR ${CMAKE_INSTALL_FULL_DATAROOTDIR}/doc/consensuskv)
set(CKV_DEFAULT_FILE ${CMAKE_INSTALL_FULL_SYSCONFDIR}/default/kvnode)
set(CKV_CONF_FILE ${CMAKE_INSTALL_FULL_SYSCONFDIR}/consensuskv/kvnode.conf)
configure_file(${CMAKE_CURRENT_LIST_DIR}/kvnode.service.in ${CMAKE_BINARY_DIR}/packaging/kvnode.service @ONLY)
configure_file(${CMAKE_CURRENT_LIST_DIR}/conffiles.in ${CMAKE_BINARY_DIR}/packaging/conffiles @ONLY)

# Debian installs man pages compressed (gzip -n: no name or time stamp, so the
# package's bytes do not depend on when it was built).
set(CKV_MAN_PAGE ${CMAKE_BINARY_DIR}/packaging/kvnode.1.gz)
add_custom_command(OUTPUT ${CKV_MAN_PAGE}
                   COMMAND ${CMAKE_COMMAND} -E copy ${PROJECT_SOURCE_DIR}/docs/kvnode.1 ${CMAKE_BINARY_DIR}/packaging/kvnode.1
                   COMMAND gzip -9 -n -f ${CMAKE_BINARY_DIR}/packaging/kvnode.1
                   DEPENDS ${PROJECT_SOURCE_DIR}/docs/kvnode.1
                   COMMENT "Compressing the man page kvnode(1)" VERBATIM)
add_custom_target(kvnode_man ALL DEPENDS ${CKV_MAN_PAGE})
add_dependencies(kvnode kvnode_man)  # a tree that built kvnode can run cpack

install(TARGETS kvnode RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CKV_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_BINARY_DIR}/packaging/kvnode.service DESTINATION ${CKV_SYSTEMD_UNIT_DIR})
install(FILES ${CMAKE_CURRENT_LIST_DIR}/default.conf DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/default
        RENAME kvnode)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/operations.md
              ${PROJECT_SOURCE_DIR}/docs/metrics.md ${PROJECT_SOURCE_DIR}/docs/api.md
              ${PROJECT_SOURCE_DIR}/docs/security.md
        DESTINATION ${CKV_DOC_DIR})
# /var/lib/consensuskv and /etc/consensuskv are made by postinst: they belong
# to the service's user, which does not exist before postinst runs.

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME consensuskv)
set(CPACK_PACKAGE_VERSION ${CKV_VERSION})
set(CPACK_PACKAGE_VENDOR "consensuskv developers")
set(CPACK_PACKAGE_CONTACT "consensuskv developers <consensuskv@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Raft-replicated key-value store with etcd's v3 API")
# One string (not a list: CPack would join its items with ";"), lines under
# 80 columns as Debian wants; CPack indents them in the control file.
string(CONCAT CPACK_PACKAGE_DESCRIPTION
       "kvnode is one member of a strongly consistent key-value cluster: a drop-in\n"
       "replacement for etcd v3 (gRPC API and JSON gateway, etcdctl works) and for\n"
       "a small HTTP key-value service. Runs as kvnode.service with its flags in\n"
       "/etc/default/kvnode and its data in /var/lib/consensuskv.")
# Absolute destinations (/lib/systemd/system, /etc/default) need DESTDIR staging.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # consensuskv_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The shared libraries kvnode links, found by dpkg-shlibdeps, follow adduser
# (postinst makes the user with it).
set(CPACK_DEBIAN_PACKAGE_DEPENDS adduser)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/postinst ${CMAKE_CURRENT_LIST_DIR}/prerm ${CMAKE_CURRENT_LIST_DIR}/postrm
    ${CMAKE_BINARY_DIR}/packaging/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)  # scripts 0755, conffiles 0644, whatever the checkout's modes
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_CURRENT_LIST_DIR}/cpack_checks.cmake)
include(CPack)
