# The katib-lite image (katib-lite:latest in manifests/): one image, one `katib` command for
# the controller, the shared suggestion and early-stopping services and the DB manager.
#
#   docker build -t katib-lite:latest .
#
# Not built by CI: these machines have no Docker engine, so this file is checked by
# reading only (tests/manifests/test_render.py looks for the base image and entrypoint).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY katib/ katib/
COPY suggestion/ suggestion/
COPY earlystop/ earlystop/
# Both database drivers, so one image serves either overlay; cryptography lets PyMySQL use
# MySQL 8's default caching_sha2_password authentication. The nas extra (PyTorch's CPU build,
# the version CI tests) is the enas algorithm's controller in the shared suggestion service;
# the ui extra is the dashboard's (manifests/base/ui.yaml).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
RUN pip install --extra-index-url "$TORCH_INDEX" "torch==$TORCH_VERSION" ".[mysql,postgres,nas,ui]" cryptography \
    && rm -rf /src

# The manifests run it as this non-root user with a read-only root filesystem; KATIB_HOME
# (the embedded SQLite default, unused in a cluster) points at the writable /tmp.
RUN useradd --uid 65532 --user-group --no-create-home --home-dir /tmp katib
USER 65532:65532
ENV KATIB_HOME=/tmp/katib
WORKDIR /tmp

ENTRYPOINT ["katib"]
CMD ["--help"]
