# Every third-party library Sluice builds against, found once here. tools/install-deps.sh
# installs them all from Debian's packages; a missing one fails configuration with its name.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
if(SLUICE_TESTS)
  find_package(GTest REQUIRED)
endif()
find_package(yaml-cpp REQUIRED)
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf)
pkg_check_modules(LIBURING REQUIRED IMPORTED_TARGET liburing)
pkg_check_modules(NGHTTP2 REQUIRED IMPORTED_TARGET libnghttp2)
find_package(OpenSSL REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(civetweb CONFIG REQUIRED)  # sluicectl reads the tunnel's admin endpoint with its client
pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(LIBNL_ROUTE REQUIRED IMPORTED_TARGET libnl-route-3.0)

# llhttp (Node.js's HTTP/1.1 parser): Debian's node-llhttp ships its C sources, not a library;
# built here once as a static library with its own warnings silenced (generated code).
set(LLHTTP_DIR /usr/share/llhttp)
if(NOT EXISTS ${LLHTTP_DIR}/llhttp.c OR NOT EXISTS /usr/share/include/llhttp/llhttp.h)
  message(FATAL_ERROR "llhttp sources not found in ${LLHTTP_DIR}: install node-llhttp (tools/install-deps.sh)")
endif()
add_library(sluice_llhttp STATIC ${LLHTTP_DIR}/llhttp.c ${LLHTTP_DIR}/api.c ${LLHTTP_DIR}/http.c)
target_include_directories(sluice_llhttp SYSTEM PUBLIC /usr/share/include/llhttp)
target_compile_options(sluice_llhttp PRIVATE -w)
set_target_properties(sluice_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
