{{- define "groundwork.name" -}}{{ .Release.Name }}-controller{{- end -}}
{{- define "groundwork.labels" -}}
app.kubernetes.io/name: groundwork
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}
{{- define "groundwork.edgeName" -}}{{ .Release.Name }}-edge{{- end -}}
{{- define "groundwork.edgeLabels" -}}
app.kubernetes.io/name: groundwork
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: edge
{{- end -}}
{{- define "groundwork.providerName" -}}{{ .Release.Name }}-provider{{- end -}}
{{- define "groundwork.providerLabels" -}}
app.kubernetes.io/name: groundwork
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: provider
{{- end -}}
