#!/usr/bin/env bash
# Builds kube-apiserver from the published k8s.io/kubernetes Go module (see hack/kube-apiserver/go.mod)
# and caches it under ~/.cache/buildfarm/bin, keyed by the content of go.mod and go.sum, so a second run
# is instant and a version bump rebuilds. Prints the binary's path on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/kube-apiserver"
cache_dir="${BUILDFARM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/buildfarm}/bin"

version="$(sed -nE 's/^[[:space:]]*(require[[:space:]]+)?k8s\.io\/kubernetes (v[^[:space:]]+).*/\2/p' "$mod_dir/go.mod")"
key="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
binary="$cache_dir/kube-apiserver-$version-$key"

if [[ ! -x "$binary" ]]; then
  command -v go >/dev/null || { echo "go is not installed: install Go 1.26+ to build kube-apiserver" >&2; exit 1; }
  mkdir -p "$cache_dir"
  echo "building kube-apiserver $version (first run only, takes several minutes) ..." >&2
  tmp="$(mktemp "$cache_dir/.kube-apiserver.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  # Stamp the version, as Kubernetes' own build does, so /version and kubectl report it.
  minor="$(echo "$version" | cut -d. -f2)"
  stamp="k8s.io/component-base/version"
  ldflags="-s -w -X $stamp.gitVersion=$version -X $stamp.gitMajor=1 -X $stamp.gitMinor=$minor -X $stamp.gitTreeState=clean"
  (cd "$mod_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv -f "$tmp" "$binary"
  trap - EXIT
  # Older builds are ~100 MB each; keep only the current one.
  find "$cache_dir" -maxdepth 1 -name 'kube-apiserver-*' ! -name "$(basename "$binary")" -delete
fi
echo "$binary"
