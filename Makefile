# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfnas-installed
FMNIST_DIR := /usr/share/datasets/fashion-mnist
DEMO_DIR := runs/demo

.PHONY: demo test lint dataset test-packages venv clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The optional runtimes the tests run end to end (an external runner per runtime).
EXTRAS_STAMP := $(VENV)/.tfnas-test-extras
$(EXTRAS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,openvino]'
	touch $(EXTRAS_STAMP)

# Debian packages: dataset-fashion-mnist (the demo's data; without it tfnas falls back to
# torchvision's downloader, which needs a network connection) and, for the tests, chromium
# (one test renders report.html in it; skipped without it). Installed when missing and
# apt-get can (root), in one apt-get call.
define debian_packages
	@missing=""; \
	for want in $(1); do \
	  case $$want in \
	    dataset-fashion-mnist) [ -d $(FMNIST_DIR) ] || missing="$$missing $$want" ;; \
	    chromium) command -v chromium >/dev/null 2>&1 || missing="$$missing $$want" ;; \
	  esac; \
	done; \
	if [ -z "$$missing" ]; then \
	  echo "Debian packages present: $(1)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "note: missing Debian packages:$$missing; apt-get cannot install them here."; \
	fi
endef

dataset:
	$(call debian_packages,dataset-fashion-mnist)

test-packages:
	$(call debian_packages,dataset-fashion-mnist chromium)

DEMO_LUT := $(DEMO_DIR)/tfnas-small-cpu-lut.json
DEMO_RUN := $(DEMO_DIR)/run
DEMO_SPACE := src/tfnas/spaces/tfnas-small.yaml

# A latency table and a demo run made for an older version of the space are dropped.
$(DEMO_DIR)/.space-stamp: $(DEMO_SPACE)
	rm -rf $(DEMO_LUT) $(DEMO_LUT).* $(DEMO_RUN)
	mkdir -p $(DEMO_DIR)
	touch $@

# The whole chain on Fashion-MNIST in one resumable run (`tfnas pipeline`): the CPU latency
# table of tfnas-small is built once on this machine (about 3 minutes) and calibrated on 30
# whole random networks, then search at the middle of the feasible range, retraining on the
# 60,000 training images (2 epochs; a short schedule trains best with a higher learning rate
# and no drop-connect), evaluation on the 10,000 test images and a latency measurement of
# the searched network, ending with one summary. A killed demo resumes where it stopped;
# a finished one prints its summary again (rm -rf runs/demo/run to start it afresh).
demo: $(STAMP) dataset $(DEMO_DIR)/.space-stamp
	$(VENV)/bin/tfnas data show fashion-mnist --space tfnas-small
	$(VENV)/bin/tfnas pipeline --space tfnas-small --lut $(DEMO_LUT) --build-lut --target-fraction 0.5 \
	  --data fashion-mnist --search-limit 4000 --search-epochs 4 --search-warmup-epochs 1 \
	  --train-epochs 2 --train-lr 0.1 --train-drop-connect 0 --out $(DEMO_RUN)

test: $(STAMP) $(EXTRAS_STAMP) test-packages
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
