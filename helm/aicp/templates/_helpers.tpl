{{/* Names, labels and the pieces every control-plane pod shares. */}}

{{- define "aicp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object name: the release name, plus "-aicp" unless it already says so. */}}
{{- define "aicp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "aicp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "aicp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "aicp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aicp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one component: web, worker, beat, migrate. Call with (dict "root" $ "component" "web"). */}}
{{- define "aicp.componentLabels" -}}
{{ include "aicp.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "aicp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aicp.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "aicp.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "aicp.installation" -}}
{{- default .Release.Name .Values.installation }}
{{- end }}

{{/* The chart's own Secret (for the values given inline), and where each secret value is read from. */}}
{{- define "aicp.secretName" -}}
{{- printf "%s-secrets" (include "aicp.fullname" .) }}
{{- end }}

{{- define "aicp.configMapName" -}}
{{- printf "%s-config" (include "aicp.fullname" .) }}
{{- end }}

{{/* An env entry read from a Secret: (dict "root" $ "name" "DATABASE_URL" "from" .Values.externalDatabase). */}}
{{- define "aicp.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      {{- if .from.existingSecret }}
      name: {{ .from.existingSecret }}
      key: {{ .from.existingSecretKey }}
      {{- else }}
      name: {{ include "aicp.secretName" .root }}
      key: {{ .name }}
      {{- end }}
{{- end }}

{{/* The environment of every control-plane container: the ConfigMap, then the secrets one by one. */}}
{{- define "aicp.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "aicp.configMapName" . }}
env:
  {{- include "aicp.secretEnv" (dict "root" . "name" "DJANGO_SECRET_KEY" "from" .Values.secretKey) | nindent 2 }}
  {{- if .Values.postgresql.enabled }}
  {{- include "aicp.secretEnv" (dict "root" . "name" "DATABASE_URL" "from" dict) | nindent 2 }}
  {{- else }}
  {{- include "aicp.secretEnv" (dict "root" . "name" "DATABASE_URL" "from" .Values.externalDatabase) | nindent 2 }}
  {{- end }}
  {{- if .Values.redis.enabled }}
  {{- include "aicp.secretEnv" (dict "root" . "name" "CELERY_BROKER_URL" "from" dict) | nindent 2 }}
  {{- else }}
  {{- include "aicp.secretEnv" (dict "root" . "name" "CELERY_BROKER_URL" "from" .Values.externalRedis) | nindent 2 }}
  {{- end }}
  {{- if or .Values.metricsToken.value .Values.metricsToken.existingSecret }}
  {{- include "aicp.secretEnv" (dict "root" . "name" "AICP_METRICS_TOKEN" "from" .Values.metricsToken) | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Writable places under a read-only root filesystem: /tmp, and the model storage. */}}
{{- define "aicp.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: storage
    mountPath: /var/lib/aicp/storage
{{- end }}

{{- define "aicp.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  - name: storage
    {{- if not .Values.storage.enabled }}
    emptyDir: {}
    {{- else }}
    persistentVolumeClaim:
      claimName: {{ default (printf "%s-storage" (include "aicp.fullname" .)) .Values.storage.existingClaim }}
    {{- end }}
{{- end }}

{{/* Pod-level settings shared by every control-plane pod. Call with (dict "root" $ "pod" .Values.web). */}}
{{- define "aicp.podSpec" -}}
serviceAccountName: {{ include "aicp.serviceAccountName" .root }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod template annotations: roll the pods when the settings change. */}}
{{- define "aicp.podAnnotations" -}}
checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
checksum/secrets: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
{{- with .pod.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Hosts of the Ingress, for ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS. */}}
{{- define "aicp.ingressHosts" -}}
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}{{ . }},{{ end }}
{{- end }}
{{- end }}
