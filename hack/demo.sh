#!/usr/bin/env bash
# End to end on a local control plane: start etcd + kube-apiserver (CRDs installed), run the operator,
# register two workers, queue the sample builds, and show them assigned. Leaves the control plane up for
# you to explore with kubectl; `make down` stops it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=.venv/bin
export PATH="$PWD/$bin:$PATH"

eval "$(buildfarm dev controlplane up)"
state=.buildfarm
mkdir -p "$state"

buildfarm operator --standalone >"$state/operator.log" 2>&1 &
operator=$!
trap 'kill "$operator" 2>/dev/null; wait "$operator" 2>/dev/null || true' EXIT

kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f crds/samples/worker-mac-mini.yaml -f crds/samples/worker-linux.yaml
# No worker agent runs here yet, so stand in for its heartbeat: mark both workers Ready.
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
for worker in mac-mini-1 linux-1; do
  kubectl patch worker "$worker" --subresource=status --type=merge -p "{\"status\":{\"conditions\":[
    {\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"DemoHeartbeat\",\"message\":\"marked Ready by hack/demo.sh\",
     \"lastTransitionTime\":\"$now\"}]}}" >/dev/null
done
kubectl -n demo create secret generic myapp-ios-signing --from-literal=p12=demo --dry-run=client -o yaml \
  | kubectl apply -f - >/dev/null
kubectl -n demo apply -f crds/samples/build-ios-archive.yaml -f crds/samples/build-android-git.yaml

echo "waiting for the operator to assign the builds ..."
for _ in $(seq 1 60); do
  phases="$(kubectl -n demo get builds -o jsonpath='{.items[*].status.phase}')"
  if [[ "$phases" == "Assigned Assigned" ]]; then break; fi
  sleep 1
done
kubectl get builds -A -o wide
kubectl get workers
if [[ "$phases" != "Assigned Assigned" ]]; then
  echo "the builds were not assigned; operator log: $state/operator.log" >&2
  exit 1
fi
cat <<MSG

buildfarm works: both builds were assigned. The control plane is still running:
  export KUBECONFIG=$KUBECONFIG
  kubectl describe build -n demo myapp-ios-1
  buildfarm operator --standalone        # run the operator again in the foreground
  make down                              # stop the control plane
MSG
