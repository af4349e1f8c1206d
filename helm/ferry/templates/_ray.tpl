{{/* The Ray containers: environment, probes and the pod template shared by the head and the workers. */}}

{{/* The Ray environment `ferry up` sets from the server section (serving/deploy.py ray_env) for this image:
     ingress auto is HAProxy (the image has it), wrapped by ferry-haproxy; then ray.env on top. */}}
{{- define "ferry.rayEnvMap" -}}
{{- $s := include "ferry.server" . | fromJson -}}
{{- $env := dict -}}
{{- $_ := set $env "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE" (int64 $s.grpc_max_message_bytes | toString) -}}
{{- $_ := set $env "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH" (int64 $s.grpc_max_message_bytes | toString) -}}
{{- if $s.throughput_optimized -}}
{{- range $k, $v := dict "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD" "0" "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP" "0" "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE" "1000" "RAY_SERVE_LOG_TO_STDERR" "0" "RAY_SERVE_USE_GRPC_BY_DEFAULT" "1" "RAY_SERVE_FREEZE_GC_ON_STARTUP" "1" -}}
{{- $_ := set $env $k $v -}}
{{- end -}}
{{- end -}}
{{- if ne $s.ingress "python" -}}
{{- $state := printf "/tmp/ferry/haproxy-%d" (int64 $s.http_port) -}}
{{- $base := int64 $s.replica_port_base -}}
{{- $_ := set $env "RAY_SERVE_ENABLE_HA_PROXY" "1" -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_BINARY_PATH" .Values.ray.haproxyBinary -}}
{{- $_ := set $env "FERRY_HAPROXY_BIND_HOST" $s.haproxy_admin_host -}}
{{- $_ := set $env "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S" (float64 $s.drain_seconds | toString) -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_STATS_PORT" (int64 $s.haproxy_stats_port | toString) -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_METRICS_PORT" (int64 $s.haproxy_metrics_port | toString) -}}
{{- $_ := set $env "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT" (int64 $s.fallback_http_port | toString) -}}
{{- $_ := set $env "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT" (int64 $s.fallback_grpc_port | toString) -}}
{{- $_ := set $env "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT" ($base | toString) -}}
{{- $_ := set $env "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT" (add $base 1000 | toString) -}}
{{- $_ := set $env "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT" (add $base 10000 | toString) -}}
{{- $_ := set $env "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT" (add $base 11000 | toString) -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC" (printf "%s/haproxy.cfg" $state) -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_SOCKET_PATH" (printf "%s/admin.sock" $state) -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH" (printf "%s/metrics.sock" $state) -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_SERVER_STATE_BASE" $state -}}
{{- $_ := set $env "RAY_SERVE_HAPROXY_SERVER_STATE_FILE" (printf "%s/server-state" $state) -}}
{{- end -}}
{{- range $k, $v := .Values.ray.env -}}
{{- $_ := set $env $k ($v | toString) -}}
{{- end -}}
{{- toJson $env -}}
{{- end -}}

{{- define "ferry.rayEnv" -}}
{{ include "ferry.env" . }}
{{- if or .Values.auth.token .Values.auth.existingSecret }}
- name: FERRY_SERVER__AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret | default (include "ferry.secretName" .) }}
      key: {{ ternary .Values.auth.existingSecretKey "auth-token" (not (empty .Values.auth.existingSecret)) }}
{{- end }}
{{- if include "ferry.monitorSeparate" . }}
- name: FERRY_MONITORING_SCHEDULES
  value: "[]"
{{- end }}
{{- range $k, $v := include "ferry.rayEnvMap" . | fromJson }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* Ray's node health (dashboard agent, Ray >= 2.53), as KubeRay would inject it. */}}
{{- define "ferry.rayNodeProbe" -}}
httpGet:
  path: /api/healthz
  port: 52365
{{- end -}}

{{/* pod template of a Ray node; call with (dict "root" $ "node" "head"|"worker" "spec" .Values.ray.head|worker) */}}
{{- define "ferry.rayPodTemplate" -}}
{{- $ := .root -}}
{{- $s := include "ferry.server" $ | fromJson -}}
metadata:
  labels:
    {{- include "ferry.labels" $ | nindent 4 }}
    app.kubernetes.io/component: ray-{{ .node }}
  {{- with $.Values.files }}
  annotations:
    checksum/files: {{ toJson . | sha256sum }}
  {{- end }}
spec:
  automountServiceAccountToken: false
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: ray-{{ .node }}
      image: {{ include "ferry.image" $ }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      ports:
        {{- if eq .node "head" }}
        - {name: gcs-server, containerPort: 6379}
        - {name: dashboard, containerPort: 8265}
        - {name: client, containerPort: 10001}
        {{- end }}
        - {name: serve, containerPort: {{ int64 $s.http_port }}}
        - {name: serve-grpc, containerPort: {{ int64 $s.grpc_port }}}
        - {name: metrics, containerPort: {{ $.Values.ray.metricsExportPort }}}
      env:
        {{- include "ferry.rayEnv" $ | nindent 8 }}
      resources:
        {{- toYaml .spec.resources | nindent 8 }}
      livenessProbe:
        {{- include "ferry.rayNodeProbe" $ | nindent 8 }}
        initialDelaySeconds: 30
        periodSeconds: 5
        timeoutSeconds: 5
        failureThreshold: 120
      readinessProbe:
        {{- if eq .node "head" }}
        {{- include "ferry.rayNodeProbe" $ | nindent 8 }}
        failureThreshold: 10
        {{- else }}
        httpGet:            # a worker is ready when its Ray Serve proxy is
          path: /-/healthz
          port: serve
        failureThreshold: 1
        {{- end }}
        initialDelaySeconds: 10
        periodSeconds: 5
        timeoutSeconds: 5
      securityContext:
        {{- toYaml $.Values.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "ferry.volumeMounts" $ | nindent 8 }}
  volumes:
    {{- include "ferry.volumes" $ | nindent 4 }}
  {{- with .spec.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .spec.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .spec.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
