#!/usr/bin/env bash
# End to end on a local control plane: start etcd + kube-apiserver (CRDs installed), apply the chart's
# RBAC and agent admission policy, run the operator, the artifact service (TLS, filesystem backend) and
# two worker agents, each with its own identity from `buildfarm worker add` (shell executor, with
# examples/fake-eas-build.py standing in for `eas build`). Then `buildfarm submit` packs and uploads
# examples/sample-app three times, the agents build from the service's copy, and `buildfarm download`
# fetches the artifacts and checks their sha256. Leaves the control plane up for you to explore with
# kubectl; `make down` stops it.
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

# The chart's RBAC (agent and user roles) and the admission policy that holds each agent to its own
# Worker, Lease and builds, as `helm install` creates them. No kubelet runs here, so the chart's
# Deployments could never start: the operator, the artifact service and the agents run as local processes.
helm="$(bash hack/build-helm.sh)"
"$helm" template buildfarm charts/buildfarm -n buildfarm-system \
  -s templates/agent-rbac.yaml -s templates/agent-policy.yaml -s templates/user-rbac.yaml \
  | kubectl apply --server-side --force-conflicts -f - >/dev/null

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The artifact service over TLS (a certificate from a CA of its own), so that it accepts the client
# certificate of your kubeconfig as well as the agents' ServiceAccount tokens.
mkdir -p "$state/tls" "$state/artifacts"
"$python" - "$state/tls" <<'PY'
import sys
from pathlib import Path

from buildfarm.dev import certs

directory = Path(sys.argv[1])
made = certs.generate(("127.0.0.1",))
certs.write_file(directory / "tls.crt", made.serving.cert_pem)
certs.write_file(directory / "tls.key", made.serving.key_pem, private=True)
certs.write_file(directory / "ca.crt", made.ca.cert_pem)
PY
artifacts_port="$(free_port)"
export BUILDFARM_ARTIFACTS_URL="https://127.0.0.1:$artifacts_port" BUILDFARM_ARTIFACTS_CA="$state/tls/ca.crt"
buildfarm artifacts serve --root "$state/artifacts" --port "$artifacts_port" \
  --tls-cert "$state/tls/tls.crt" --tls-key "$state/tls/tls.key" >"$state/artifacts.log" 2>&1 &
pids+=($!)

buildfarm operator --standalone >"$state/operator.log" 2>&1 &
pids+=($!)

command="$python $repo/examples/fake-eas-build.py build --local --non-interactive --platform {platform} --profile {profile} --output {artifact}"
start_agent() {  # name, metrics port, capacity, platforms...
  local name="$1" metrics_port="$2" capacity="$3"
  shift 3
  local platforms=()
  for platform in "$@"; do platforms+=(--platform "$platform"); done
  # Its own identity: the Worker, ServiceAccount worker-<name> and a kubeconfig with a bounded token.
  local kubeconfig="$state/$name.kubeconfig"
  buildfarm worker add "$name" "${platforms[@]}" --capacity "$capacity" --output-kubeconfig "$kubeconfig" \
    >/dev/null 2>&1 || buildfarm worker rotate "$name" --output-kubeconfig "$kubeconfig" >/dev/null
  BUILDFARM_AGENT_COMMAND="$command" buildfarm agent --kubeconfig "$kubeconfig" --worker-name "$name" \
    --capacity "$capacity" "${platforms[@]}" --work-dir "$state/agent-$name" --stop-grace 5 \
    --metrics-port "$metrics_port" >"$state/agent-$name.log" 2>&1 &
  pids+=($!)
}
start_agent mac-mini-1 9091 2 ios android
start_agent linux-1 9093 1 android  # 9092 is the artifact service's

for _ in $(seq 1 60); do
  "$python" -c "import ssl, sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/healthz', context=ssl.create_default_context(cafile=sys.argv[2]), timeout=2)" \
    "$BUILDFARM_ARTIFACTS_URL" "$BUILDFARM_ARTIFACTS_CA" 2>/dev/null && break
  sleep 0.5
done

# What a developer runs: pack the project (honouring .gitignore / .easignore), upload it, create the Build.
for build in "sample-ios-1 ios production" "sample-android-1 android preview" "sample-android-2 android production"; do
  read -r name platform profile <<<"$build"
  buildfarm submit examples/sample-app -n demo --platform "$platform" --profile "$profile" --name "$name" >/dev/null
done
echo "submitted 3 builds with buildfarm submit; waiting for the agents to run them ..."

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
buildfarm logs sample-ios-1 -n demo --tail 3
echo
echo "downloading the artifacts (each checked against the sha256 in its Build's status):"
mkdir -p "$state/downloads"
for name in sample-ios-1 sample-android-1 sample-android-2; do
  buildfarm download "$name" -n demo -o "$state/downloads"
done
cat <<MSG

buildfarm works: three builds were submitted, ran on two agents, succeeded, and their artifacts were
downloaded. The operator, the artifact service and the agents stop now; the control plane keeps running:
  export KUBECONFIG=$KUBECONFIG
  kubectl describe build -n demo sample-ios-1       # conditions, Events (Assigned, Running, Succeeded)
  buildfarm list -n demo                             # or: kubectl get builds -n demo
  buildfarm retry sample-ios-1 -n demo               # a new build with the same spec, linked both ways
  buildfarm operator --standalone                    # run the operator again in the foreground
  make down                                          # stop the control plane
Logs of this run: $state/
MSG
