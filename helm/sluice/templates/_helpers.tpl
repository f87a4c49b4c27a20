{{/* Names and labels shared by every object of the chart. */}}
{{- define "sluice.labels" -}}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* An image reference: {{ include "sluice.image" (list $ .Values.images.agent) }} */}}
{{- define "sluice.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $ref := printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- if $root.Values.images.registry -}}{{ printf "%s/%s" $root.Values.images.registry $ref }}{{- else -}}{{ $ref }}{{- end -}}
{{- end -}}

{{- define "sluice.controllerName" -}}sluice-controller{{- end -}}
{{- define "sluice.nodeName" -}}sluice-node{{- end -}}
{{- define "sluice.ztunnelName" -}}sluice-ztunnel{{- end -}}
{{- define "sluice.configMapName" -}}
{{- default "sluice-controller-config" .Values.controller.existingConfigMap -}}
{{- end -}}

{{/* The controller's in-cluster address for the nodes (mTLS discovery and certificates). */}}
{{- define "sluice.controllerAddress" -}}
{{ include "sluice.controllerName" . }}.{{ .Release.Namespace }}.svc:15012
{{- end -}}

{{/* A container's securityContext that grants exactly `caps` and nothing else. */}}
{{- define "sluice.nodeSecurityContext" -}}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsUser: 0
runAsNonRoot: false
seccompProfile: {type: RuntimeDefault}
capabilities:
  drop: [ALL]
  {{- if . }}
  add: [{{ join ", " . }}]
  {{- end }}
{{- end -}}
