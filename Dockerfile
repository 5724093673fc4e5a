# registrator: one per Docker host, host networking, the Docker socket mounted read-only.
#
# Builds with no network inside: the Python dependencies come from a wheelhouse made on the
# host (`scripts/build-image` does it all):
#   pip wheel . -w build/wheels   (wheels must match the base image's Python)
#   docker build --build-arg BASE=python:3.12-slim -t registrator .
# BASE must have python3 with venv and pip: python:3.*-slim, or the Debian bookworm base
# scripts/build-image makes with debootstrap where no image registry is reachable.
ARG BASE=python:3.12-slim

FROM ${BASE} AS build
COPY build/wheels /wheels
# The venv's own pip and setuptools are only needed to install: dropped (about 25 MB).
RUN python3 -m venv /opt/registrator \
 && /opt/registrator/bin/pip install --no-cache-dir --no-index --find-links /wheels registrator \
 && /opt/registrator/bin/pip uninstall -q -y pip setuptools \
 && /opt/registrator/bin/registrator --version

FROM ${BASE}
COPY --from=build /opt/registrator /opt/registrator
# Non-root. Reading the Docker socket (root:docker, mode 660) needs its group, whose gid
# differs per host, so the container runs with
#   --group-add "$(stat -c %g /var/run/docker.sock)"
# With a socket proxy (DOCKER_HOST=tcp://...) no group is needed at all.
RUN groupadd --system --gid 10001 registrator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin registrator
USER 10001:10001
ENV PATH=/opt/registrator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    REGISTRATOR_METRICS_ADDR=127.0.0.1:9101
# /healthz (on REGISTRATOR_METRICS_ADDR) answers 200 only while the Docker event stream and
# the etcd lease are up; `registrator healthcheck` asks it and exits 0 or 1.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["registrator", "healthcheck"]
# Exec form: the Python process is PID 1 and handles SIGTERM itself, so `docker stop`
# revokes this host's lease (its entries vanish at once) and the container exits 0.
ENTRYPOINT ["registrator"]
CMD ["run"]
