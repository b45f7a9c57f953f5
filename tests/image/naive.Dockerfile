# syntax=docker/dockerfile:1
#
# The yardstick for the entrypoint's layer size (tests/image/test_layer_size.py): what a seller
# would write without docker/Dockerfile, a plain `pip install boto3 pyjwt cryptography` into a
# virtual environment (Debian's python3 refuses system-wide installs, PEP 668), at the versions
# docker/requirements.lock pins, with pip's cache left out as hadolint (DL3042) asks.
ARG BASE_IMAGE=python:3.13-slim-trixie
FROM ${BASE_IMAGE}
ARG BOTO3_VERSION
ARG PYJWT_VERSION
ARG CRYPTOGRAPHY_VERSION
RUN --mount=type=secret,id=pipca,required=false \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
        "boto3==${BOTO3_VERSION}" "pyjwt==${PYJWT_VERSION}" "cryptography==${CRYPTOGRAPHY_VERSION}"
