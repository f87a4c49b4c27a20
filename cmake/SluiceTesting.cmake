# Test registration with CTest labels:
#   unit        pure logic, no privileges, fast; also run under ASan+UBSan in CI
#   privileged  needs root: network namespaces, cgroups, BPF
#   e2e         whole binaries in a simulated cluster
# sluice_test(<name> SOURCES ... LIBS ... LABELS ... [RUN_SERIAL])
include(GoogleTest)

# `sluice_unit_tests` builds every executable labelled unit (and what they depend on): the
# sanitizer pass of tools/test.sh builds only that. (Tests are discovered when they run, so a
# fresh build folder cannot list them before they are built.)
if(NOT TARGET sluice_unit_tests)
  add_custom_target(sluice_unit_tests)
endif()

function(sluice_test name)
  cmake_parse_arguments(ARG "RUN_SERIAL" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  if("unit" IN_LIST ARG_LABELS)
    add_dependencies(sluice_unit_tests ${name})
  endif()
  if(NOT ARG_TIMEOUT)
    if("unit" IN_LIST ARG_LABELS)
      set(ARG_TIMEOUT 60)
    else()
      set(ARG_TIMEOUT 300)
    endif()
  endif()
  # LABELS is set after discovery (below): gtest_discover_tests's PROPERTIES cannot carry a
  # list (CMake 3.25 splits it), and "LABELS privileged e2e" had every property after it read as
  # name/value pairs shifted by one, so RUN_SERIAL, TIMEOUT and the leak-check fixture were
  # silently lost for the e2e tests.
  set(properties TIMEOUT ${ARG_TIMEOUT})
  if(ARG_RUN_SERIAL)
    list(APPEND properties RUN_SERIAL TRUE)
  endif()
  # Every test of a privileged binary shares the leak-check fixture: the check runs after them.
  if("privileged" IN_LIST ARG_LABELS)
    list(APPEND properties FIXTURES_REQUIRED sluice_sim_leak_check)
  endif()
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST NO_PRETTY_VALUES TEST_LIST ${name}_TESTS PROPERTIES ${properties})
  # Included by ctest after the discovery file (TEST_INCLUDE_FILES keeps order), which sets
  # ${name}_TESTS to the discovered tests.
  set(labels_file "${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake")
  file(WRITE "${labels_file}"
       "if(${name}_TESTS)\n  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\")\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${labels_file}")
endfunction()
