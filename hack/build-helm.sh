#!/usr/bin/env bash
# Builds helm from the published helm.sh/helm Go module (see hack/helm/go.mod) and caches it under
# ~/.cache/buildfarm/bin, keyed by the content of go.mod, go.sum and this script, like
# hack/build-kube-apiserver.sh: a second run is instant and a version bump rebuilds. Prints the path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/helm"
cache_dir="${BUILDFARM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/buildfarm}/bin"

version="$(sed -nE 's/^[[:space:]]*(require[[:space:]]+)?helm\.sh\/helm\/v3 (v[^[:space:]]+).*/\2/p' "$mod_dir/go.mod")"
key="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
binary="$cache_dir/helm-$version-$key"

if [[ ! -x "$binary" ]]; then
  command -v go >/dev/null || { echo "go is not installed: install Go 1.26+ to build helm" >&2; exit 1; }
  mkdir -p "$cache_dir"
  echo "building helm $version (first run only, takes a few minutes) ..." >&2
  tmp="$(mktemp "$cache_dir/.helm.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  # Stamp what helm's own Makefile stamps: its version (`helm version`), and the Kubernetes version of
  # its client-go, which `helm template` and `helm lint` assume for .Capabilities (else v1.20).
  k8s_minor="$(sed -nE 's/^[[:space:]]*k8s\.io\/client-go v0\.([0-9]+)\..*/\1/p' "$mod_dir/go.mod")"
  pkg="helm.sh/helm/v3"
  ldflags="-s -w -X $pkg/internal/version.version=$version -X $pkg/internal/version.gitTreeState=clean"
  for var in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X $pkg/$var.k8sVersionMajor=1 -X $pkg/$var.k8sVersionMinor=$k8s_minor"
  done
  (cd "$mod_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg/cmd/helm")
  mv -f "$tmp" "$binary"
  trap - EXIT
  # Keep only the current build.
  find "$cache_dir" -maxdepth 1 -name 'helm-*' ! -name "$(basename "$binary")" -delete
fi
echo "$binary"
