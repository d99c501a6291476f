#!/usr/bin/env bash
# Builds versitygw (github.com/versity/versitygw, Apache-2.0), an S3-compatible server over a POSIX
# directory, from the Go module proxy (see hack/s3-server/go.mod). The S3 artifact backend's tests and
# benchmark run against it. Cached under ~/.cache/buildfarm/bin, keyed by go.mod, go.sum and this script,
# so a second run is instant and a version bump rebuilds. Prints the binary's path on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/s3-server"
cache_dir="${BUILDFARM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/buildfarm}/bin"

version="$(sed -nE 's/^[[:space:]]*(require[[:space:]]+)?github\.com\/versity\/versitygw (v[^[:space:]]+).*/\2/p' "$mod_dir/go.mod")"
key="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
binary="$cache_dir/versitygw-$version-$key"

if [[ ! -x "$binary" ]]; then
  command -v go >/dev/null || { echo "go is not installed: install Go 1.26+ to build versitygw" >&2; exit 1; }
  mkdir -p "$cache_dir"
  echo "building versitygw $version (first run only, takes a few minutes) ..." >&2
  tmp="$(mktemp "$cache_dir/.versitygw.XXXXXX")"
  trap 'rm -f "$tmp"' EXIT
  (cd "$mod_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp" github.com/versity/versitygw/cmd/versitygw)
  mv -f "$tmp" "$binary"
  trap - EXIT
  # Keep only the current build.
  find "$cache_dir" -maxdepth 1 -name 'versitygw-*' ! -name "$(basename "$binary")" -delete
fi
echo "$binary"
