#!/usr/bin/env bash
# End to end on a local control plane: start etcd + kube-apiserver (CRDs installed), run the operator and
# two worker agents (shell executor, with examples/fake-eas-build.py standing in for `eas build`), serve
# the sample project as a source archive on 127.0.0.1, submit three builds and show them reach Succeeded
# with their artifacts. Leaves the control plane up for you to explore with kubectl; `make down` stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
bin=.venv/bin
export PATH="$repo/$bin:$PATH"
python="$repo/$bin/python"

eval "$(buildfarm dev controlplane up)"
state="$repo/.buildfarm/demo"
rm -rf "$state" && mkdir -p "$state/serve"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

for ns in buildfarm-system demo; do
  kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
done
kubectl -n demo delete builds --all >/dev/null  # a second run starts over (a Build's spec is immutable)

# The sample project as the source archive a build downloads (plain http is allowed only on loopback).
tar -czf "$state/serve/sample-app.tgz" -C examples/sample-app .
sha="$(sha256sum "$state/serve/sample-app.tgz" | cut -d' ' -f1)"
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$python" -m http.server --bind 127.0.0.1 --directory "$state/serve" "$port" >"$state/http.log" 2>&1 &
pids+=($!)

buildfarm operator --standalone >"$state/operator.log" 2>&1 &
pids+=($!)

command="$python $repo/examples/fake-eas-build.py build --local --non-interactive --platform {platform} --profile {profile} --output {artifact}"
start_agent() {  # name, metrics port, capacity, platforms...
  local name="$1" metrics_port="$2" capacity="$3"
  shift 3
  local platforms=()
  for platform in "$@"; do platforms+=(--platform "$platform"); done
  BUILDFARM_AGENT_COMMAND="$command" buildfarm agent --worker-name "$name" --capacity "$capacity" \
    "${platforms[@]}" --work-dir "$state/agent-$name" --stop-grace 5 --metrics-port "$metrics_port" \
    >"$state/agent-$name.log" 2>&1 &
  pids+=($!)
}
start_agent mac-mini-1 9091 2 ios android
start_agent linux-1 9093 1 android  # 9092 is the artifact service's

url="http://127.0.0.1:$port/sample-app.tgz"
for build in "sample-ios-1 ios production" "sample-android-1 android preview" "sample-android-2 android production"; do
  read -r name platform profile <<<"$build"
  kubectl -n demo apply -f - >/dev/null <<YAML
apiVersion: buildfarm.dev/v1alpha1
kind: Build
metadata:
  name: $name
spec:
  platform: $platform
  profile: $profile
  source:
    archive:
      url: $url
      sha256: $sha
YAML
done
echo "submitted 3 builds; waiting for the agents to run them ..."

phases=""
for _ in $(seq 1 120); do
  phases="$(kubectl -n demo get builds -o jsonpath='{range .items[*]}{.status.phase}{" "}{end}')"
  if [[ "$phases" == "Succeeded Succeeded Succeeded " ]]; then break; fi
  if [[ "$phases" == *Failed* || "$phases" == *Cancelled* ]]; then break; fi
  sleep 1
done
kubectl get workers
kubectl -n demo get builds -o wide
if [[ "$phases" != "Succeeded Succeeded Succeeded " ]]; then
  echo "the builds did not all succeed (phases: $phases); logs in $state/" >&2
  exit 1
fi
echo
echo "artifacts:"
kubectl -n demo get builds \
  -o jsonpath='{range .items[*]}{.metadata.name}{"\t"}{range .status.artifacts[*]}{.name} {.size} bytes sha256:{.sha256} {.location}{end}{"\n"}{end}'
cat <<MSG

buildfarm works: three builds ran on two agents and succeeded. The operator and the agents stop now;
the control plane keeps running:
  export KUBECONFIG=$KUBECONFIG
  kubectl describe build -n demo sample-ios-1       # conditions, Events (Queued, Assigned, ...)
  kubectl get build -n demo sample-ios-1 -o jsonpath='{.status.logTail}'
  buildfarm retry sample-ios-1 -n demo               # a new build with the same spec, linked both ways
  buildfarm operator --standalone                    # run the operator again in the foreground
  make down                                          # stop the control plane
Logs of this run: $state/
MSG
