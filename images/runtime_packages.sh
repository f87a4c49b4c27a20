#!/usr/bin/env bash
# The Debian packages of the shared libraries the given programs link directly (their NEEDED
# entries, located with ldd, owner from dpkg -S), one per line, sorted; apt brings what those
# libraries need in turn. The images' runtime stages install exactly these (check_dockerfile.sh
# compares), so an image never lacks a library nor carries one it does not use.
# Usage: runtime_packages.sh PROGRAM...
set -euo pipefail
for program in "$@"; do
  [[ -x $program ]] || { echo "runtime_packages: $program is not an executable" >&2; exit 1; }
  needed=$(readelf -d "$program" | awk '/\(NEEDED\)/ {gsub(/[][]/, "", $5); print $5}')
  ldd "$program" | awk -v needed="$needed" 'BEGIN {split(needed, n, "\n"); for (i in n) want[n[i]] = 1}
                                            /=> \// && ($1 in want) {print $3}'
done | sort -u | while read -r lib; do
  # Bookworm's packages install under /usr/lib; ldd may report the /lib path of the merged /usr.
  real=$(readlink -f "$lib")
  for candidate in "$lib" "/usr$lib" "$real" "/usr$real"; do
    if owner=$(dpkg -S "$candidate" 2>/dev/null); then
      echo "${owner%%:*}"
      continue 2
    fi
  done
  echo "runtime_packages: no Debian package owns $lib" >&2
  exit 1
done | sed 's/, .*//' | sort -u
