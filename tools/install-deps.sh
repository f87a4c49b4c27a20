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
      libyaml-cpp-dev libcli11-dev prometheus-cpp-dev node-llhttp libre2-dev libxxhash-dev libcivetweb-dev
      libcurl4-openssl-dev libnl-route-3-dev)
TEST=(libgtest-dev libgmock-dev googletest libbenchmark-dev libclang-rt-14-dev clang-16 libclang-rt-16-dev)
# The simulated cluster and the independent peers the tests and the demo talk to.
RUNTIME=(iproute2 procps psmisc containernetworking-plugins python3 python3-h2 python3-grpcio curl openssl
         iperf3 wrk nghttp2-proxy nghttp2-client haproxy tcpdump netcat-openbsd util-linux)
# The Helm chart's check (tools/chart/check.sh) runs on Node.js; a machine may already have a
# newer Node.js than Debian's, installed some other way: then Debian's is not added.
CHART=()
command -v npm >/dev/null || CHART=(nodejs npm)

ALL=("${BUILD[@]}" "${BPF[@]}" "${LIBS[@]}" "${TEST[@]}" "${RUNTIME[@]}" "${CHART[@]}")
# SLUICE_DEPS=build: only what building the shipped programs needs (the images' build stage;
# configure with -DSLUICE_TESTS=OFF).
BUILD_ONLY=0
if [[ ${SLUICE_DEPS:-all} == build ]]; then
  ALL=("${BUILD[@]}" "${BPF[@]}" "${LIBS[@]}")
  BUILD_ONLY=1
elif [[ ${SLUICE_DEPS:-all} != all ]]; then
  echo "install-deps: SLUICE_DEPS must be all or build, not '${SLUICE_DEPS}'" >&2
  exit 1
fi

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

# curl >= 8.1 speaks HTTP/2 to an HTTPS proxy (--proxy-http2): the HBONE interop test uses it.
# bookworm has 7.88; bookworm-backports has 8.x. The backports source is derived from this
# machine's own Debian source (same mirror, same keyring), never a hard-coded host.
CURL_MIN=8.1
BACKPORTS_LIST=/etc/apt/sources.list.d/sluice-backports.sources
curl_recent() {
  local v
  v=$(dpkg-query -W -f='${Version}' curl 2>/dev/null || true)
  [[ -n $v ]] && dpkg --compare-versions "$v" ge "$CURL_MIN"
}
add_backports_source() {
  [[ -f $BACKPORTS_LIST ]] && return 0
  local codename uri keyring
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # deb822: the stanza whose Suites include the release itself.
    read -r uri keyring < <(awk -v c="$codename" '
      /^URIs:/ {u=$2} /^Signed-By:/ {k=$2}
      /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == c) found=1}
      /^$/ {if (found && u != "") {print u, k; exit} found=0; u=""; k=""}
      END {if (found && u != "") print u, k}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z ${uri:-} && -f /etc/apt/sources.list ]]; then
    uri=$(awk -v c="$codename" '$1 == "deb" && $3 == c {print $2; exit}' /etc/apt/sources.list)
  fi
  if [[ -z $codename || -z ${uri:-} ]]; then
    echo "install-deps: no Debian source for $codename found; cannot add $codename-backports" >&2
    return 1
  fi
  {
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: $codename-backports"
    echo "Components: main"
    [[ -n ${keyring:-} ]] && echo "Signed-By: $keyring"
  } >"$BACKPORTS_LIST"
  echo "install-deps: added $codename-backports from $uri"
}

# curl >= CURL_MIN is for the tests (HBONE with --proxy-http2): not needed to build.
if [[ $BUILD_ONLY == 1 ]]; then curl_recent() { return 0; }; fi

if [[ ${#missing[@]} -eq 0 ]] && curl_recent; then
  echo "install-deps: all ${#ALL[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
curl_recent || add_backports_source
apt-get update -qq || echo "install-deps: apt-get update failed; trying with the cached lists" >&2
: >/tmp/sluice-install-deps.log
if [[ ${#missing[@]} -gt 0 ]] && ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/sluice-install-deps.log 2>&1; then
  echo "install-deps: apt-get install failed (log: /tmp/sluice-install-deps.log); still missing:" >&2
  for pkg in "${missing[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || echo "  $pkg" >&2
  done
  tail -n 20 /tmp/sluice-install-deps.log >&2
  exit 1
fi
if ! curl_recent; then
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  if ! apt-get install -y -qq --no-install-recommends -t "$codename-backports" curl libcurl4 libcurl4-openssl-dev \
      >>/tmp/sluice-install-deps.log 2>&1 || ! curl_recent; then
    echo "install-deps: curl >= $CURL_MIN from $codename-backports could not be installed (log: /tmp/sluice-install-deps.log)" >&2
    tail -n 20 /tmp/sluice-install-deps.log >&2
    exit 1
  fi
  echo "install-deps: curl $(dpkg-query -W -f='${Version}' curl) from $codename-backports"
fi
echo "install-deps: done"
