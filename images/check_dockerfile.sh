#!/usr/bin/env bash
# Checks images/Dockerfile against the built programs: for every stage marked
# "# runtime-packages: PROGRAM...", the packages its apt-get line installs must be exactly
# those runtime_packages.sh derives from the programs in BUILD_DIR/bin; and every program the
# build stage builds is shipped by some stage.
# Usage: check_dockerfile.sh BUILD_DIR [DOCKERFILE]   (default: images/Dockerfile)
#        check_dockerfile.sh BUILD_DIR --self-test   the check, then a copy missing a package
#                                                   must fail it (ctest ImagesCheck)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: check_dockerfile.sh BUILD_DIR}
if [[ ${2:-} == --self-test ]]; then
  bash "$0" "$build"
  mutated=$(mktemp)
  trap 'rm -f "$mutated"' EXIT
  sed 's/ libcurl4 / /' "$here/Dockerfile" > "$mutated"
  if cmp -s "$here/Dockerfile" "$mutated"; then echo "images: the self-test mutation did not apply" >&2; exit 1; fi
  if bash "$0" "$build" "$mutated" >/dev/null; then echo "images: a stage missing libcurl4 passed the check" >&2; exit 1; fi
  echo "images: a stage missing libcurl4 is caught"
  exit 0
fi
dockerfile=${2:-$here/Dockerfile}
status=0
stages=0
while IFS= read -r marker; do
  stage=$(awk -v m="$marker" '/^FROM / {s=$NF} $0 == m {print s; exit}' "$dockerfile")
  programs=${marker#\# runtime-packages: }
  # The package words of the RUN apt-get line(s) after the marker, up to the "&&" that ends them.
  listed=$(awk -v m="$marker" '$0 == m {on=1; next} on && /&& rm -rf/ {exit} on {print}' "$dockerfile" |
           sed 's/.*--no-install-recommends//; s/\\$//' | tr ' ' '\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | sort -u)
  paths=()
  for p in $programs; do paths+=("$build/bin/$p"); done
  derived=$(bash "$here/runtime_packages.sh" "${paths[@]}")
  if [[ $listed != "$derived" ]]; then
    echo "images: stage $stage installs:"; echo "$listed" | sed 's/^/  /'
    echo "but its programs ($programs) link:"; echo "$derived" | sed 's/^/  /'
    status=1
  fi
  for p in $programs; do
    grep -q "^COPY --from=build .*/build/bin/$p[ \\]" "$dockerfile" || { echo "images: stage $stage does not copy $p"; status=1; }
  done
  stages=$((stages + 1))
done < <(grep '^# runtime-packages: ' "$dockerfile")
[[ $stages -eq 3 ]] || { echo "images: expected 3 stages with runtime-packages, found $stages"; status=1; }
[[ $status -eq 0 ]] && echo "images: $stages stages install exactly the packages their programs link"
exit $status
