#!/usr/bin/env bash
# Builds promtool from the published github.com/prometheus/prometheus Go module (see hack/promtool/go.mod)
# and caches it under ~/.cache/buildfarm/bin, keyed by the content of go.mod, go.sum and this script, like
# hack/build-kube-apiserver.sh: a second run is instant and a version bump rebuilds. Prints the path.
# The alert rules' tests (tests/monitoring/) run `promtool check rules` and `promtool test rules` with it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/promtool"
cache_dir="${BUILDFARM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/buildfarm}/bin"

# The Go module is tagged v0.MAJORMINOR.PATCH (v0.316.0 is Prometheus 3.16.0).
version="$(sed -nE 's/^[[:space:]]*(require[[:space:]]+)?github\.com\/prometheus\/prometheus (v[^[:space:]]+).*/\2/p' "$mod_dir/go.mod")"
key="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
binary="$cache_dir/promtool-$version-$key"

if [[ ! -x "$binary" ]]; then
  command -v go >/dev/null || { echo "go is not installed: install Go 1.26+ to build promtool" >&2; exit 1; }
  mkdir -p "$cache_dir"
  echo "building promtool $version (first run only, takes a few minutes) ..." >&2
  tmp="$(mktemp "$cache_dir/.promtool.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  # Stamp the release version (v0.316.0 -> 3.16.0) as Prometheus' own build does, so `promtool --version`
  # says which rule-language it checks against.
  minor="$(echo "$version" | cut -d. -f2)"
  release="${minor:0:1}.$((10#${minor:1})).$(echo "$version" | cut -d. -f3)"
  ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
  # remove_all_sd leaves out Prometheus' service-discovery plugins (cloud SDKs, Kubernetes client):
  # checking and unit-testing rules needs none, and the build is much smaller without them.
  (cd "$mod_dir" && CGO_ENABLED=0 go build -trimpath -tags netgo,remove_all_sd -ldflags "$ldflags" -o "$tmp" \
    github.com/prometheus/prometheus/cmd/promtool)
  mv -f "$tmp" "$binary"
  trap - EXIT
  # Keep only the current build.
  find "$cache_dir" -maxdepth 1 -name 'promtool-*' ! -name "$(basename "$binary")" -delete
fi
echo "$binary"
