# registrator: one per Docker host, host networking, the Docker socket mounted read-only.
#
# Builds with no network inside: the Python dependencies come from a wheelhouse made on the
# host (`scripts/build-image` does it all):
#   pip wheel . -w build/wheels   (wheels must match the base image's Python)
#   docker build --build-arg BASE=python:3.12-slim -t registrator .
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
COPY build/wheels /wheels
RUN python3 -m venv /opt/registrator \
 && /opt/registrator/bin/pip install --no-cache-dir --no-index --find-links /wheels registrator \
 && /opt/registrator/bin/registrator --version

FROM ${BASE}
COPY --from=build /opt/registrator /opt/registrator
# Non-root: reading the Docker socket needs its group, which differs per host, so run with
#   --group-add "$(stat -c %g /var/run/docker.sock)"
RUN groupadd --system --gid 10001 registrator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin registrator
USER 10001:10001
ENV PATH=/opt/registrator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REGISTRATOR_METRICS_ADDR=127.0.0.1:9101
# /healthz answers 200 only while the Docker event stream and the etcd lease are up.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["registrator", "healthcheck"]
# The Python process is PID 1 and handles SIGTERM itself: `docker stop` revokes the lease.
ENTRYPOINT ["registrator"]
CMD ["run"]
