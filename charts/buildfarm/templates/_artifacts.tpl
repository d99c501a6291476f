{{/* The artifact service's names. */}}
{{- define "buildfarm.artifacts.name" -}}
{{- printf "%s-artifacts" (include "buildfarm.fullname" .) -}}
{{- end -}}

{{/* The Secret holding its serving certificate: the one given, or the one the chart generates. */}}
{{- define "buildfarm.artifacts.tlsSecret" -}}
{{- default (printf "%s-tls" (include "buildfarm.artifacts.name" .)) .Values.artifacts.tls.secretName -}}
{{- end -}}

{{/* The claim holding the filesystem backend's files: the one given, or the chart's. */}}
{{- define "buildfarm.artifacts.claim" -}}
{{- default (include "buildfarm.artifacts.name" .) .Values.artifacts.storage.filesystem.existingClaim -}}
{{- end -}}
