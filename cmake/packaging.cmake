# Debian packages, built by CPack (`cpack -G DEB` or `cmake --build BUILD --target package` in
# the build directory), one per install component:
#   dynkv-server  storaged, the dynkv tool, storaged.service and /etc/dynkv/storaged.toml
#   libdynkv0     the SDK's shared library
#   libdynkv-dev  its headers, the libdynkv.so link and the CMake package (dynkv::client)
# The files a package installs besides the build's targets are in cmake/packaging/.
set(DYNKV_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR}/packaging)

# The unit and the config have absolute destinations, and only the package installs them:
# EXCLUDE_FROM_ALL keeps them out of a plain `cmake --install --prefix DIR`, while CPack,
# which installs one component at a time, still takes them.
install(FILES ${DYNKV_PACKAGING_DIR}/storaged.service DESTINATION /lib/systemd/system
  COMPONENT server EXCLUDE_FROM_ALL)
install(FILES ${DYNKV_PACKAGING_DIR}/storaged.toml DESTINATION /etc/dynkv
  COMPONENT server EXCLUDE_FROM_ALL)

# Installed binaries hold no RPATH into the build tree: CMake rewrites it at install time to
# CMAKE_INSTALL_RPATH, which stays empty (storaged and dynkv link only system libraries, and
# libdynkv lands in the standard library directory). package-test.sh checks it.

set(CPACK_PACKAGE_NAME dynkv)
set(CPACK_PACKAGE_VENDOR "dynkv")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "dynkv maintainers <dynkv@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL server libdynkv dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION database)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
# Maintainer scripts keep their 0755, the rest of the control files get 0644.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Library dependencies come from dpkg-shlibdeps (dpkg-dev), which CPack runs on every ELF file
# it finds with `file`; ./dev installs both.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# A shlibs file in the package that holds a shared library (libdynkv0 alone), so that
# dpkg-shlibdeps maps an application's libdynkv.so.N to it.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
find_program(DYNKV_DPKG_SHLIBDEPS dpkg-shlibdeps)
find_program(DYNKV_FILE_PROGRAM file)
if(NOT DYNKV_DPKG_SHLIBDEPS OR NOT DYNKV_FILE_PROGRAM)
  message(STATUS "dpkg-shlibdeps or file not found: the .debs list their libraries by hand")
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
  set(runtime "libcapnp-0.9.2, libstdc++6 (>= 12), libc6 (>= 2.34), libgcc-s1")
  set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "${runtime}, liblmdb0, libtomlplusplus3")
  set(CPACK_DEBIAN_LIBDYNKV_PACKAGE_DEPENDS "${runtime}")
endif()

# Each description's first line is the package's synopsis (CPack indents the rest). No
# CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPack would put it first in all three.
set(CPACK_COMPONENT_SERVER_DESCRIPTION "dynkv storage daemon, command-line tool and systemd unit
dynkv is a Dynamo-style highly available key-value store. storaged keeps a node's replicas in
LMDB, gossips membership, hands off hints and runs Merkle anti-entropy. The package runs it as
the dynkv system user from storaged.service, configured by /etc/dynkv/storaged.toml; the unit
is installed but not enabled.")
set(CPACK_COMPONENT_LIBDYNKV_DESCRIPTION "dynkv client SDK (shared library)
libdynkv is the smart client of dynkv, a Dynamo-style key-value store: it computes preference
lists and runs the quorum state machines itself, with a blocking API and a kj-promise API.")
set(CPACK_COMPONENT_DEV_DESCRIPTION "dynkv client SDK (development files)
The headers, the libdynkv.so link and the CMake package: find_package(dynkv) then link
dynkv::client, which requires C++17.")

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME dynkv-server)
# What the maintainer scripts use; dpkg-shlibdeps' findings are appended.
if(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS)
  string(APPEND CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS ", adduser")
else()
  set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS adduser)
endif()
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
  ${DYNKV_PACKAGING_DIR}/conffiles ${DYNKV_PACKAGING_DIR}/postinst
  ${DYNKV_PACKAGING_DIR}/prerm ${DYNKV_PACKAGING_DIR}/postrm)

set(CPACK_DEBIAN_LIBDYNKV_PACKAGE_NAME libdynkv${PROJECT_VERSION_MAJOR})
set(CPACK_DEBIAN_LIBDYNKV_PACKAGE_SECTION libs)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libdynkv-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# The headers include kj's (the kj-promise API) and dynkvConfig.cmake finds CapnProto.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "libdynkv${PROJECT_VERSION_MAJOR} (= ${PROJECT_VERSION}), libcapnp-dev (>= 0.9)")

include(CPack)
