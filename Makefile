# MoFind — two commands for a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3.11
# Blender 5.1+ wheels need Python 3.13: the first working interpreter (plain or pyenv's); empty = skip those tests.
PYTHON313 ?= $(shell for p in python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && echo $$p && break; done)
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: run test test-backend test-addon bench addon venv venv-bpy42 venv-bpy50 venv-bpy53 clean system-deps

# --- environments ----------------------------------------------------------
# FBX / glTF ingest reads through assimp (impasse loads libassimp.so.5): Debian/Ubuntu's libassimp5 package.
system-deps:
	@{ /sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null; } | grep -q 'libassimp\.so\.5' || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libassimp5; \
	  else echo "FBX/glTF ingest needs libassimp5: sudo apt-get install libassimp5" >&2; fi; }

$(VENV)/.stamp: requirements.txt requirements.lock requirements-cluster.txt pyproject.toml setup.py | system-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c requirements.lock
	$(PY) -m pip install -q -r requirements-cluster.txt -c requirements.lock  # the 'cluster' extra: tested by make test
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@
venv: $(VENV)/.stamp

.venv-bpy53/.stamp: PYTHON := $(PYTHON313)
.venv-bpy%/.stamp: requirements-bpy%.txt
	$(PYTHON) -m venv .venv-bpy$*
	.venv-bpy$*/bin/python -m pip install -q -r $<
	touch $@
venv-bpy42: .venv-bpy42/.stamp
venv-bpy50: .venv-bpy50/.stamp
venv-bpy53: .venv-bpy53/.stamp

# --- main job: the backend with the shipped model and the default index ------
# LIBRARY=/path/to/mocap lets the add-on index that folder (repeat --library-root via mofind.toml for more)
run: venv
	$(VENV)/bin/mofind serve $(if $(LIBRARY),--library-root "$(LIBRARY)")

# --- tests -----------------------------------------------------------------
test: test-backend test-addon

test-backend: venv venv-bpy42  # the FBX/glTF ingest tests export with Blender's own exporters (bpy 4.2)
	$(PY) -m pytest -q tests/backend tests/addon_pure

test-addon: venv venv-bpy42 venv-bpy50
	.venv-bpy42/bin/python -m pytest -q tests/addon_bpy
	.venv-bpy50/bin/python -m pytest -q tests/addon_bpy
ifneq ($(strip $(PYTHON313)),)
	$(MAKE) venv-bpy53
	.venv-bpy53/bin/python -m pytest -q tests/addon_bpy
else
	@echo "Blender 5.3 (Python 3.13) add-on tests skipped: no Python 3.13 interpreter found"
endif

# --- benchmarks (write bench/results/*.md) ----------------------------------
bench: venv
	$(PY) -m bench.run_all

# --- the Blender extension zip ---------------------------------------------
addon: venv
	$(PY) build_addon.py

clean:
	rm -rf dist build .pytest_cache
