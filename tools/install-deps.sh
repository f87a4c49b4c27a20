#!/usr/bin/env bash
# Installs every Debian package that building Sluice, its tests and its demo need.
# Idempotent: packages already present are skipped, so a second run costs one dpkg query.
# Run as root on Debian 12 (bookworm). Exits non-zero naming what could not be installed.
set -euo pipefail

# One list per purpose, so a reader sees why each package is here.
BUILD=(build-essential cmake ninja-build pkg-config ccache git)
BPF=(clang llvm libbpf-dev bpftool)
LIBS=(liburing-dev libssl-dev libnghttp2-dev libprotobuf-dev protobuf-compiler
      libgrpc++-dev protobuf-compiler-grpc libspdlog-dev libfmt-dev nlohmann-json3-dev
      libyaml-cpp-dev libcli11-dev prometheus-cpp-dev node-llhttp)
TEST=(libgtest-dev libgmock-dev googletest libbenchmark-dev libclang-rt-14-dev clang-16 libclang-rt-16-dev)
# The simulated cluster and the independent peers the tests and the demo talk to.
RUNTIME=(iproute2 procps psmisc containernetworking-plugins python3 python3-h2 curl openssl
         iperf3 wrk nghttp2-proxy haproxy tcpdump netcat-openbsd)

ALL=("${BUILD[@]}" "${BPF[@]}" "${LIBS[@]}" "${TEST[@]}" "${RUNTIME[@]}")

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: must run as root (it installs Debian packages)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  echo "install-deps: apt-get not found; Sluice's installer supports Debian 12 only" >&2
  exit 1
fi

missing=()
for pkg in "${ALL[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#ALL[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || echo "install-deps: apt-get update failed; trying with the cached lists" >&2
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sluice-install-deps.log 2>&1; then
  echo "install-deps: apt-get install failed (log: /tmp/sluice-install-deps.log); still missing:" >&2
  for pkg in "${missing[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || echo "  $pkg" >&2
  done
  tail -n 20 /tmp/sluice-install-deps.log >&2
  exit 1
fi
echo "install-deps: done"
