# BPF programs as libbpf skeletons (the libbpf-bootstrap pattern):
#   bpf/<name>.bpf.c --clang -target bpf--> <name>.bpf.o --bpftool gen skeleton--> <name>.skel.h
# sluice_bpf_skeleton(<target> <source>) makes an INTERFACE library <target> whose include
# directory holds <name>.skel.h; C++ code links it and includes "<name>.skel.h". The object is
# embedded in the header, so binaries carry their BPF programs with them.
#
# vmlinux.h (kernel type definitions for CO-RE) is generated from the build machine's BTF;
# CO-RE relocations make the programs load on other kernels that have BTF.

find_program(BPF_CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)

set(SLUICE_BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf-gen)
set(SLUICE_VMLINUX_H ${SLUICE_BPF_GEN_DIR}/vmlinux.h)
set(SLUICE_KERNEL_BTF /sys/kernel/btf/vmlinux)
if(NOT EXISTS ${SLUICE_KERNEL_BTF})
  message(FATAL_ERROR "${SLUICE_KERNEL_BTF} not found: the kernel has no BTF, which CO-RE BPF needs")
endif()
add_custom_command(
  OUTPUT ${SLUICE_VMLINUX_H}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${SLUICE_BPF_GEN_DIR}
  COMMAND ${BPFTOOL} btf dump file ${SLUICE_KERNEL_BTF} format c > ${SLUICE_VMLINUX_H}.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${SLUICE_VMLINUX_H}.tmp ${SLUICE_VMLINUX_H}
  COMMENT "Generating vmlinux.h from the kernel's BTF")
add_custom_target(sluice_vmlinux_h DEPENDS ${SLUICE_VMLINUX_H})

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64")
  set(SLUICE_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64")
  set(SLUICE_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "BPF target architecture for ${CMAKE_SYSTEM_PROCESSOR} unknown")
endif()

function(sluice_bpf_skeleton target source)
  get_filename_component(name ${source} NAME_WE)
  get_filename_component(abs_source ${source} ABSOLUTE)
  get_filename_component(source_dir ${abs_source} DIRECTORY)
  set(object ${SLUICE_BPF_GEN_DIR}/${name}.bpf.o)
  set(skeleton ${SLUICE_BPF_GEN_DIR}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${object}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${SLUICE_BPF_ARCH}
            -Wall -Werror -I${SLUICE_BPF_GEN_DIR} -I${source_dir} -I${CMAKE_SOURCE_DIR}
            -c ${abs_source} -o ${object}
    DEPENDS ${abs_source} ${SLUICE_VMLINUX_H} ${ARGN}
    IMPLICIT_DEPENDS C ${abs_source}
    COMMENT "BPF ${name}.bpf.c")
  add_custom_command(
    OUTPUT ${skeleton}
    COMMAND ${BPFTOOL} gen skeleton ${object} name ${name} > ${skeleton}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skeleton}.tmp ${skeleton}
    DEPENDS ${object}
    COMMENT "BPF skeleton ${name}.skel.h")
  add_custom_target(${target}_gen DEPENDS ${skeleton})
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_gen)
  target_include_directories(${target} INTERFACE ${SLUICE_BPF_GEN_DIR})
  target_link_libraries(${target} INTERFACE PkgConfig::LIBBPF)
endfunction()
