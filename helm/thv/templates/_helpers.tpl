{{- /* the release name alone when it already contains the chart name ("thv", not "thv-thv") */ -}}
{{- define "thv.fullname" -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if .Values.fullnameOverride -}}{{ .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains $name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end -}}
{{- end -}}

{{- define "thv.labels" -}}
app.kubernetes.io/name: thv-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "thv.selector" -}}
app.kubernetes.io/name: thv-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "thv.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "thv.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}
