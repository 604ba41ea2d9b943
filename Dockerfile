# alertd container image: a small, non-root runtime with a HEALTHCHECK on /healthz.
#
#   docker build -t alertd .
#   docker run -d --name alertd -p 127.0.0.1:9177:9177 \
#     -v alertd-state:/var/lib/alertd -v /etc/alertd:/etc/alertd:ro alertd
#
# Configuration: /etc/alertd/alertd.toml (ALERTD_CONFIG), overridable with ALERTD_* variables.
# Check it with:  docker run --rm -v /etc/alertd:/etc/alertd:ro alertd check
# Lint with:      hadolint Dockerfile   (tests/integration/test_packaging.py does)

# Both stages use the same pinned patch release: the venv's python is a symlink to the base
# image's /usr/local/bin/python3, so builder and runtime must match. Bump them together.

# ---- builder: install alertd and its dependencies into a self-contained venv ----------------
FROM python:3.11.15-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
# Only what the wheel is built from (see .dockerignore).
COPY pyproject.toml README.md ./
COPY alertd ./alertd
RUN /opt/venv/bin/pip install --no-cache-dir .

# ---- runtime -------------------------------------------------------------------------------
FROM python:3.11.15-slim-bookworm

LABEL org.opencontainers.image.title="alertd" \
      org.opencontainers.image.description="Civilian air-alert notification daemon: polls alert feeds and advisories, fans out through Apprise" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="MIT"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ALERTD_STATE_DIR=/var/lib/alertd \
    ALERTD_HTTP__LISTEN=0.0.0.0:9177 \
    ALERTD_CONFIG=/etc/alertd/alertd.toml

# A system user without a login shell; the state directory is its only writable place.
# A fixed numeric UID/GID so volume ownership and USER resolve the same on every host.
RUN groupadd --system --gid 10001 alertd \
    && useradd --system --no-log-init --uid 10001 --gid alertd --no-create-home \
        --home-dir /var/lib/alertd --shell /usr/sbin/nologin alertd \
    && install -d -o alertd -g alertd -m 0700 /var/lib/alertd

COPY --from=builder /opt/venv /opt/venv

# The alertd user created above, by number (a name may not resolve outside the image).
USER 10001:10001
WORKDIR /var/lib/alertd
VOLUME /var/lib/alertd
EXPOSE 9177

# No curl in slim images: ask /healthz with Python. 200 → exit 0 (healthy); 503, a refused
# connection or a timeout raise → exit 1 (unhealthy). The port follows ALERTD_HTTP__LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as r; p=os.environ.get('ALERTD_HTTP__LISTEN','0.0.0.0:9177').rpartition(':')[2]; sys.exit(0 if r.build_opener(r.ProxyHandler({})).open('http://localhost:'+p+'/healthz',timeout=4).status==200 else 1)"]

ENTRYPOINT ["alertd"]
CMD ["run"]
