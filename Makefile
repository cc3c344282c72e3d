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

DEMO_LUT := $(DEMO_DIR)/tfnas-small-cpu-lut.json

# The CPU latency table of tfnas-small, built once on this machine (about 3 minutes; a killed
# build resumes) and calibrated on 30 whole random networks; kept until the space changes.
$(DEMO_LUT): src/tfnas/spaces/tfnas-small.yaml | $(STAMP)
	mkdir -p $(DEMO_DIR)
	$(VENV)/bin/tfnas lut build --space tfnas-small --device cpu --threads 1 --batch-size 1 \
	  --resume --out $(DEMO_DIR)/lut-uncalibrated.json
	cp $(DEMO_DIR)/lut-uncalibrated.json $(DEMO_DIR)/lut-calibrating.json
	$(VENV)/bin/tfnas lut check --lut $(DEMO_DIR)/lut-calibrating.json --archs 30 --calibrate
	mv $(DEMO_DIR)/lut-calibrating.json $@

demo: $(STAMP) dataset $(DEMO_LUT)
	$(VENV)/bin/tfnas spaces
	$(VENV)/bin/tfnas data show fashion-mnist --space tfnas-small
	$(VENV)/bin/tfnas lut range --lut $(DEMO_LUT)
	$(VENV)/bin/tfnas arch random --space tfnas-small --seed 0 --out $(DEMO_DIR)/arch.json
	$(VENV)/bin/tfnas info $(DEMO_DIR)/arch.json --data fashion-mnist
	$(VENV)/bin/tfnas profile $(DEMO_DIR)/arch.json --device cpu --threads 1 --lut $(DEMO_LUT)
	rm -rf $(DEMO_DIR)/search
	$(VENV)/bin/tfnas search --space tfnas-small --lut $(DEMO_LUT) --target-fraction 0.5 \
	  --data fashion-mnist --limit 4000 --epochs 4 --warmup-epochs 1 --out $(DEMO_DIR)/search
	$(VENV)/bin/tfnas info $(DEMO_DIR)/search/arch.json
	$(VENV)/bin/tfnas profile $(DEMO_DIR)/search/arch.json --device cpu --threads 1 --lut $(DEMO_LUT)

test: $(STAMP) dataset
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
