# opsforge.stack: the two entry points of the README, and the pieces they are made of.
# Both do their own set-up from a fresh Debian/Ubuntu machine (venv, Docker engine, base images).
SHELL := /bin/bash
VENV_BIN := $(CURDIR)/.venv/bin
export PATH := $(VENV_BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export MOLECULE_GLOB := molecule/*/molecule.yml

.PHONY: demo test rehearsal rehearsal-destroy demo-destroy demo-check lint unit molecule scenario bootstrap benchmark help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

demo:  ## deploy the whole stack to local test hosts, then run the smoke checks
	scripts/demo

test:  ## the whole test suite: lint, unit tests, sanity, Molecule scenarios (what CI runs)
	scripts/test-suite

rehearsal:  ## converge inventories/example/$(ENV) as a user copies it on local test hosts, twice, then the drills (ENV=production|staging|dev)
	scripts/rehearsal $(or $(ENV),production)

rehearsal-destroy:  ## remove the rehearsal's hosts (ENV=...)
	scripts/rehearsal $(or $(ENV),production) destroy

demo-destroy:  ## remove the demo's test hosts
	scripts/demo destroy

demo-check:  ## headless Chromium opens the demo's site (demo CA trusted) and Prometheus's alerts; screenshots in .cache/artifacts/
	python tests/browser/demo_check.py

bootstrap:  ## the controller venv (.venv) from requirements.txt
	scripts/bootstrap

lint: bootstrap  ## yamllint, ansible-lint (production profile), ruff
	SKIP="test-hosts unit sanity molecule" scripts/test-suite

unit: bootstrap  ## unit tests of the plugins
	python -m pytest -q tests/unit

molecule: bootstrap  ## every Molecule scenario, two at a time (SCENARIOS="a b:bookworm" to choose)
	SKIP="yamllint ansible-lint ruff unit sanity" scripts/test-suite

scenario: bootstrap  ## one scenario, kept for debugging: make scenario S=default CMD=converge
	OPSFORGE_MOLECULE_COMMAND=$(or $(CMD),test) scripts/run-scenarios $(S)
