{{/* Names, labels, and the pieces every Ferry pod shares. */}}

{{- define "ferry.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ferry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ferry.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* ferry.yaml's server section with the schema's defaults (serving/spec.py ServerSpec) for what the chart reads. */}}
{{- define "ferry.server" -}}
{{- $s := .Values.ferry.server | default dict -}}
{{- $out := dict "host" (dig "host" "127.0.0.1" $s) "http_port" (dig "http_port" 8080 $s) "grpc_port" (dig "grpc_port" 9000 $s) -}}
{{- $_ := set $out "ingress" (dig "ingress" "auto" $s) -}}
{{- $_ := set $out "grpc_max_message_bytes" (dig "grpc_max_message_bytes" 67108864 $s) -}}
{{- range $k, $v := dict "haproxy_admin_host" "127.0.0.1" "haproxy_stats_port" 8404 "haproxy_metrics_port" 9101 "fallback_http_port" 8500 "fallback_grpc_port" 9500 "replica_port_base" 30000 -}}
{{- $_ := set $out $k (dig $k $v $s) -}}
{{- end -}}
{{- $_ := set $out "throughput_optimized" (dig "throughput_optimized" true $s) -}}
{{- $_ := set $out "drain_seconds" (dig "drain_seconds" 5.0 $s) -}}
{{- toJson $out -}}
{{- end -}}

{{/* The Ray Serve config document of ferry.app.serve_config: what `ferry render serve-config` prints. */}}
{{- define "ferry.serveConfig" -}}
{{- $s := include "ferry.server" . | fromJson -}}
{{- $app := dict "name" "ferry" "route_prefix" "/" "import_path" "ferry.app:build" "args" (dict "config" .Values.ferry "base_dir" .Values.baseDir) -}}
{{- $grpc := dict "port" (int64 $s.grpc_port) "grpc_servicer_functions" (list "serving.protos.inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server") -}}
{{- $doc := dict "proxy_location" "EveryNode" "http_options" (dict "host" $s.host "port" (int64 $s.http_port)) "grpc_options" $grpc "applications" (list $app) -}}
{{- toYaml $doc -}}
{{- end -}}

{{- define "ferry.secretName" -}}
{{- printf "%s-secrets" (include "ferry.fullname" .) -}}
{{- end -}}

{{- define "ferry.kafkaBootstrap" -}}
{{- if .Values.kafka.deploy.enabled -}}
{{- printf "%s-kafka:9092" (include "ferry.fullname" .) -}}
{{- else -}}
{{- .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the Redis URL comes from the chart: the in-chart Redis, redis.url or an existing Secret. */}}
{{- define "ferry.redisConfigured" -}}
{{- if or .Values.redis.deploy.enabled .Values.redis.url .Values.redis.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* True when monitoring schedules run in the monitor Deployment rather than inside Ray Serve. */}}
{{- define "ferry.monitorSeparate" -}}
{{- if and .Values.monitor.enabled .Values.ferry.monitoring_schedules -}}true{{- end -}}
{{- end -}}

{{/* ConfigMap key of a file below baseDir (keys cannot hold "/"). */}}
{{- define "ferry.fileKey" -}}
{{- printf "file-%s" (sha256sum . | trunc 16) -}}
{{- end -}}

{{/* Environment of every Ferry container: HOME on the writable /tmp, Kafka, Redis, FERRY_* overrides. */}}
{{- define "ferry.env" -}}
- name: HOME
  value: /tmp
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- with include "ferry.kafkaBootstrap" . }}
- name: FERRY_KAFKA__BOOTSTRAP_SERVERS
  value: {{ . | quote }}
{{- end }}
{{- if include "ferry.redisConfigured" . }}
- name: FERRY_REDIS__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret | default (include "ferry.secretName" .) }}
      key: {{ ternary .Values.redis.existingSecretKey "redis-url" (not (empty .Values.redis.existingSecret)) }}
{{- end }}
{{- range $k, $v := .Values.ferryEnv }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* Volumes of every Ferry pod: baseDir (shared claim or emptyDir), ferry.yaml and files, /tmp. */}}
{{- define "ferry.volumes" -}}
- name: data
{{- if .Values.storage.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.existingClaim | default (printf "%s-data" (include "ferry.fullname" .)) }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: config
  configMap:
    name: {{ include "ferry.fullname" . }}-config
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "ferry.volumeMounts" -}}
- name: data
  mountPath: {{ .Values.baseDir }}
- name: config
  mountPath: {{ .Values.baseDir }}/ferry.yaml
  subPath: ferry.yaml
  readOnly: true
{{- range $path, $_ := .Values.files }}
- name: config
  mountPath: {{ printf "%s/%s" $.Values.baseDir $path }}
  subPath: {{ include "ferry.fileKey" $path }}
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod-template annotation that rolls Deployments when ferry.yaml or its files change. */}}
{{- define "ferry.configChecksum" -}}
checksum/config: {{ printf "%s%s" (toJson .Values.ferry) (toJson .Values.files) | sha256sum }}
{{- end -}}

{{/* Checks that stop an install that cannot work, with the reason. */}}
{{- define "ferry.checks" -}}
{{- $host := (include "ferry.server" . | fromJson).host -}}
{{- if or (hasPrefix "127." $host) (eq $host "localhost" "::1") -}}
{{- fail (printf "ferry.server.host is %s: Ray Serve's proxies must listen on the pod's address for the Service to reach them; use 0.0.0.0" $host) -}}
{{- end -}}
{{- if dig "server" "auth_token" nil (.Values.ferry | default dict) -}}
{{- fail "ferry.server.auth_token: keep the token out of ferry.yaml (it would sit in the ConfigMap and the RayService); set auth.token or auth.existingSecret" -}}
{{- end -}}
{{- if and (include "ferry.monitorSeparate" .) (not .Values.storage.enabled) -}}
{{- fail "ferry.monitoring_schedules run in the monitor Deployment and read the captures the Ray pods write: set storage.enabled=true (a ReadWriteMany volume at baseDir shared by both)" -}}
{{- end -}}
{{- if .Values.ingest.enabled -}}
{{- if not .Values.ferry.feature_groups -}}
{{- fail "ingest.enabled: ferry.feature_groups is empty, so the ingest workers have nothing to consume" -}}
{{- end -}}
{{- if not (or (include "ferry.kafkaBootstrap" .) .Values.ferry.kafka) -}}
{{- fail "ingest.enabled: the ingest workers need Kafka: set kafka.bootstrapServers or kafka.deploy.enabled=true" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.kafka.deploy.enabled .Values.kafka.bootstrapServers -}}
{{- fail "kafka: set either kafka.bootstrapServers (an external Kafka) or kafka.deploy.enabled (the chart's own), not both" -}}
{{- end -}}
{{- if and .Values.redis.deploy.enabled (or .Values.redis.url .Values.redis.existingSecret) -}}
{{- fail "redis: set either redis.url / redis.existingSecret (an external Redis) or redis.deploy.enabled (the chart's own), not both" -}}
{{- end -}}
{{- if and .Values.auth.token .Values.auth.existingSecret -}}
{{- fail "auth: set either auth.token or auth.existingSecret, not both" -}}
{{- end -}}
{{- end -}}
