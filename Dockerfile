# syntax=docker/dockerfile:1
# The operator image: `buildfarm operator` on a slim Python, as a non-root user, with only the
# operator's runtime packages at exact versions (hack/docker/requirements.txt). Reproducible: pinned
# base, pinned packages, no caches, SOURCE_DATE_EPOCH for the wheel's timestamps. For a byte-stable
# base pin the digest too: --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest>.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
# Who owns the installed code: root, so the non-root process cannot change it. Only the Tiltfile's dev
# build passes the pod's user, so that live update can sync sources in.
ARG APP_OWNER=0

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SOURCE_DATE_EPOCH=315532800
WORKDIR /src
RUN python -m venv /opt/buildfarm \
 && /opt/buildfarm/bin/pip install --no-deps setuptools==80.9.0
COPY hack/docker/requirements.txt /src/requirements.txt
RUN /opt/buildfarm/bin/pip install --no-deps --only-binary=:all: -r /src/requirements.txt
COPY pyproject.toml README.md /src/
COPY operator /src/operator
# Not editable: the package is copied into site-packages (Tilt's live_update syncs there).
RUN /opt/buildfarm/bin/pip install --no-deps --no-build-isolation /src \
 && /opt/buildfarm/bin/pip uninstall --yes setuptools pip \
 && find /opt/buildfarm -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
ARG APP_OWNER
LABEL org.opencontainers.image.title="buildfarm-operator" \
      org.opencontainers.image.source="https://github.com/buildfarm-dev/buildfarm" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build --chown=${APP_OWNER}:0 /opt/buildfarm /opt/buildfarm
ENV PATH=/opt/buildfarm/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A numeric user, so Kubernetes can check runAsNonRoot; no shell login, no home, owns nothing.
USER 10001:10001
ENTRYPOINT ["buildfarm"]
CMD ["operator"]
