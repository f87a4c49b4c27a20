# Links third-party libraries from their static archives wherever Debian ships one (gRPC, absl,
# protobuf, OpenSSL, nghttp2, liburing, libbpf, re2, ...), so each program carries only the parts
# of them it uses. Why: a shared library is mapped whole and the kernel faults its text in 64 KiB
# windows around every page touched, so the tunnel's idle RSS was mostly library text it never
# runs (24.2 MiB, 20 MiB of it shared-clean pages of libgrpc, libcrypto, libprotobuf). Linked from
# archives only the objects a program references come in, and the relocations of those shared
# libraries (private dirty pages) go too.
#
# Stays shared: libstdc++ and libc (every C++ library below shares them; two copies of libstdc++
# in one process would not be safe), what Debian ships only as a shared library (spdlog, fmt,
# prometheus-cpp, civetweb), and libcurl (the controller's Kubernetes client): its archive needs a
# dozen more (GSSAPI, libssh2, LDAP, libidn2, ...) that its imported target does not name.
#
# libcurl, shared, brings its own libssl, libcrypto, libnghttp2 and zlib: a program linking both
# keeps two separate copies of each (our code calls the archive's, curl its own; nothing crosses
# between them). The archives' symbols are kept out of the program's dynamic symbol table
# (--exclude-libs) so that curl's calls are never bound to our copy: half of one OpenSSL and half
# of another sharing objects would not be safe.
#
# How: after every find_package, each imported library target whose file has an archive beside
# it is pointed at the archive; pkg-config targets take pkg-config's static link list (an
# archive's own dependencies, e.g. libbpf's libelf and zlib). Configure with
# -DSLUICE_STATIC_ARCHIVES=OFF to link the shared libraries instead.

# The archive beside a shared library (/x/libfoo.so[.N...] -> /x/libfoo.a), or "" when none.
function(sluice_archive_beside library out)
  set(archive "")
  # (Two ifs: CMAKE_MATCH_1 is expanded before MATCHES sets it when both sit in one condition.)
  if(library MATCHES "^(/.*/lib[^/]+)\\.so(\\.[0-9.]+)?$")
    if(EXISTS "${CMAKE_MATCH_1}.a")
      set(archive "${CMAKE_MATCH_1}.a")
    endif()
  endif()
  set(${out} "${archive}" PARENT_SCOPE)
endfunction()

# Points a SHARED or UNKNOWN imported target at the archive beside its library, for every
# configuration it was imported with.
function(sluice_point_at_archive target)
  get_target_property(configurations ${target} IMPORTED_CONFIGURATIONS)
  set(properties IMPORTED_LOCATION)
  if(configurations)
    foreach(configuration IN LISTS configurations)
      string(TOUPPER "${configuration}" configuration)
      list(APPEND properties IMPORTED_LOCATION_${configuration})
    endforeach()
  endif()
  foreach(property IN LISTS properties)
    get_target_property(library ${target} ${property})
    if(library)
      sluice_archive_beside("${library}" archive)
      if(archive)
        set_target_properties(${target} PROPERTIES ${property} "${archive}")
      endif()
    endif()
  endforeach()
endfunction()

# A pkg-config target (pkg_check_modules PREFIX ... IMPORTED_TARGET) links pkg-config's --static
# list: each library from its archive where there is one, else by name.
function(sluice_pkg_config_static prefix)
  set(libraries "")
  foreach(name IN LISTS ${prefix}_STATIC_LIBRARIES)
    set(found "")
    foreach(dir IN LISTS ${prefix}_STATIC_LIBRARY_DIRS CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
      if(NOT found AND EXISTS "${dir}/lib${name}.a")
        set(found "${dir}/lib${name}.a")
      endif()
    endforeach()
    if(NOT found)
      set(found "${name}")
    endif()
    list(APPEND libraries "${found}")
  endforeach()
  if(libraries)
    set_target_properties(PkgConfig::${prefix} PROPERTIES INTERFACE_LINK_LIBRARIES "${libraries}")
  endif()
endfunction()

# `pkg_config_prefixes`: the PREFIX of every pkg_check_modules(... IMPORTED_TARGET ...) call.
function(sluice_link_static_archives pkg_config_prefixes)
  get_directory_property(imported IMPORTED_TARGETS)
  foreach(target IN LISTS imported)
    get_target_property(type ${target} TYPE)
    if(target MATCHES "^PkgConfig::" OR target STREQUAL "CURL::libcurl")
      continue()
    elseif(type STREQUAL "SHARED_LIBRARY" OR type STREQUAL "UNKNOWN_LIBRARY")
      sluice_point_at_archive(${target})
    endif()
  endforeach()
  foreach(prefix IN LISTS pkg_config_prefixes)
    sluice_pkg_config_static(${prefix})
  endforeach()
  add_link_options(LINKER:--exclude-libs,libssl.a:libcrypto.a:libnghttp2.a:libz.a)
  # gRPC's own Findre2 makes re2::re2 an interface target that links "-lre2" (the shared
  # library): it links the same pkg-config target as everything else instead.
  if(TARGET re2::re2 AND TARGET PkgConfig::RE2)
    get_target_property(type re2::re2 TYPE)
    if(type STREQUAL "INTERFACE_LIBRARY")
      set_target_properties(re2::re2 PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::RE2 INTERFACE_LINK_DIRECTORIES "")
    endif()
  endif()
endfunction()
