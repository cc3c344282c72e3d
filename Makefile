# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfnas-installed
FMNIST_DIR := /usr/share/datasets/fashion-mnist
DEMO_DIR := runs/demo

.PHONY: demo test lint dataset venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Fashion-MNIST comes from the Debian package when it is missing and apt-get can install it;
# elsewhere tfnas falls back to torchvision's downloader (needs a network connection).
dataset:
	@if [ -d $(FMNIST_DIR) ]; then \
	  echo "Fashion-MNIST found in $(FMNIST_DIR)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "note: $(FMNIST_DIR) is missing and apt-get cannot install dataset-fashion-mnist here;"; \
	  echo "      tfnas will download Fashion-MNIST with torchvision when it is needed."; \
	fi

demo: $(STAMP) dataset
	mkdir -p $(DEMO_DIR)
	$(VENV)/bin/tfnas spaces
	$(VENV)/bin/tfnas data show fashion-mnist --space tfnas-small
	$(VENV)/bin/tfnas arch random --space tfnas-small --seed 0 --out $(DEMO_DIR)/arch.json
	$(VENV)/bin/tfnas info $(DEMO_DIR)/arch.json --data fashion-mnist

test: $(STAMP) dataset
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
