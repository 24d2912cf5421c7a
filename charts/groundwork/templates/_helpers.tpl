{{- define "groundwork.name" -}}{{ .Release.Name }}-controller{{- end -}}
{{- define "groundwork.labels" -}}
app.kubernetes.io/name: groundwork
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}
