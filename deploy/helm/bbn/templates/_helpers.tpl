{{/* The run id: run.name or the release name; checked to be a DNS label short enough for pod names. */}}
{{- define "bbn.run" -}}
{{- $run := default .Release.Name .Values.run.name -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$" $run) -}}
{{- fail (printf "run.name %q must be 1-40 lowercase letters, digits or '-', starting with a letter and not ending with '-'" $run) -}}
{{- end -}}
{{- $run -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "bbn.labels" -}}
app.kubernetes.io/name: bbn
app.kubernetes.io/instance: {{ include "bbn.run" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
bbn.dev/run: {{ include "bbn.run" . }}
{{- end -}}

{{/* Selector labels of one component (call with dict "ctx" $ "component" "worker"). */}}
{{- define "bbn.selector" -}}
app.kubernetes.io/name: bbn
bbn.dev/run: {{ include "bbn.run" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bbn.image" -}}
{{- if .Values.image.reference -}}
{{- .Values.image.reference -}}
{{- else -}}
{{- $flavour := ternary "gpu" "cpu" .Values.gpu -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-%s" .Chart.AppVersion $flavour) .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "bbn.taskQueue" -}}
{{- default (printf "bbn-%s" (include "bbn.run" .)) .Values.temporal.taskQueue -}}
{{- end -}}

{{/* The port at the end of an address such as host:7233 or nats://host:4222. */}}
{{- define "bbn.port" -}}
{{- splitList ":" . | last | atoi -}}
{{- end -}}

{{- define "bbn.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret -}}
{{- .Values.credentials.existingSecret -}}
{{- else if .Values.credentials.stringData -}}
{{- printf "%s-credentials" (include "bbn.run" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the coordinator and the workers. */}}
{{- define "bbn.env" -}}
- name: BBN_RUN_ID
  value: {{ include "bbn.run" . | quote }}
- name: BBN_CONFIG
  value: /etc/bbn/run.yaml
- name: BBN_COORDINATOR_ADDRESS
  value: {{ printf "%s-coordinator.%s.svc.cluster.local:%d" (include "bbn.run" .) .Release.Namespace (int .Values.ports.coordinator) | quote }}
- name: BBN_TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: BBN_TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: BBN_TASK_QUEUE
  value: {{ include "bbn.taskQueue" . | quote }}
- name: BBN_NATS_URL
  value: {{ .Values.nats.url | quote }}
- name: BBN_CHECKPOINT_DIR
  value: /var/lib/bbn/checkpoints
- name: BBN_DATA_DIR
  value: /data
- name: BBN_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if include "bbn.credentialsSecret" . }}
- name: BBN_CREDENTIALS_DIR
  value: /etc/bbn/credentials
{{- end }}
{{- end -}}

{{/* Volumes shared by the coordinator and the workers. */}}
{{- define "bbn.volumes" -}}
- name: config
  configMap:
    name: {{ include "bbn.run" . }}-config
{{- range $vol := list "checkpoints" "data" }}
{{- $p := index $.Values.persistence $vol }}
- name: {{ $vol }}
{{- if $p.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-%s" (include "bbn.run" $) $vol) $p.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}
- name: tmp
  emptyDir: {}
{{- with include "bbn.credentialsSecret" . }}
- name: credentials
  secret:
    secretName: {{ . }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "bbn.volumeMounts" -}}
- name: config
  mountPath: /etc/bbn/run.yaml
  subPath: run.yaml
  readOnly: true
- name: checkpoints
  mountPath: /var/lib/bbn/checkpoints
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if include "bbn.credentialsSecret" . }}
- name: credentials
  mountPath: /etc/bbn/credentials
  readOnly: true
{{- end }}
{{- end -}}

{{- define "bbn.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "bbn.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
