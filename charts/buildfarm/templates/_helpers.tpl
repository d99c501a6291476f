{{/*
Names. Cluster-scoped objects (ClusterRoles, the admission policy, CRDs) are shared by the whole
cluster, so their names start with the fullname: two releases never fight over one object.
*/}}
{{- define "buildfarm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "buildfarm.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "buildfarm.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "buildfarm.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{/* The farm namespace: agents' Leases and ServiceAccounts live there. */}}
{{- define "buildfarm.farmNamespace" -}}
{{- .Values.farmNamespace.name -}}
{{- end -}}

{{/* The agent ClusterRole and the Role of the same name in the farm namespace (`buildfarm worker add --agent-role`). */}}
{{- define "buildfarm.agentRole" -}}
{{- printf "%s-agent" (include "buildfarm.fullname" .) -}}
{{- end -}}

{{/*
How the operator runs, as far as its rights are concerned (operator/buildfarm/kube/permissions.py Mode):
one replica runs --standalone (no peering); more replicas peer so that all but one pause.
*/}}
{{- define "buildfarm.standalone" -}}
{{- if le (int .Values.operator.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{- define "buildfarm.namespaced" -}}
{{- if .Values.operator.namespaces -}}true{{- end -}}
{{- end -}}

{{- define "buildfarm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "buildfarm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: buildfarm
{{- end -}}

{{- define "buildfarm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "buildfarm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "buildfarm.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Annotations of an object that `helm uninstall` must leave behind when crds.keep is on. */}}
{{- define "buildfarm.keep" -}}
{{- if .Values.crds.keep }}
helm.sh/resource-policy: keep
{{- end -}}
{{- end -}}

{{/* Non-empty when a permission row applies (When in permissions.py): dict when, standalone, namespaced. */}}
{{- define "buildfarm.uses" -}}
{{- if eq .when "always" -}}true
{{- else if eq .when "some_namespaces" -}}{{ .namespaced }}
{{- else if eq .when "peering_all_namespaces" -}}{{ if and (not .standalone) (not .namespaced) }}true{{ end }}
{{- else if eq .when "peering_some_namespaces" -}}{{ if and (not .standalone) .namespaced }}true{{ end }}
{{- else -}}{{ fail (printf "files/operator-permissions.yaml: unknown when %q: run `buildfarm dev crds`" .when) }}
{{- end -}}
{{- end -}}
