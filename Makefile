# FedMPT: `make demo` runs the whole federated job on the synthetic consortium; `make test` runs the suite.
VENV      := .venv
PY        := $(VENV)/bin/python
WORKDIR   ?= fedmpt-demo

# Flower reaches the network by default: keep it offline and its state inside the project.
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export FLWR_HOME := $(CURDIR)/.flwr
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install browser orthanc demo test integration bench dashboard screenshots clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/fedmpt demo --workdir $(WORKDIR)

# The dashboard's browser test drives Debian's Chromium (no browser download at run time).
browser:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The PACS tests start Debian's Orthanc with its DICOMweb plugin on loopback (no service is enabled).
orthanc:
	test -x /usr/sbin/Orthanc && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb; }

# pytest exits 5 when it collects no test, so an empty suite fails here.
test: install browser orthanc
	$(PY) -m pytest

# Every test marked integration: the multi-process deployments (SuperLink + proxy + SuperNodes
# on loopback, driven through the fedmpt commands; two concurrent federate runs); minutes long.
# Two pytest-xdist workers, each taking whole modules (--dist loadfile), so that a module's
# deployment is started once. (--dist loadgroup would let a module name its worker, but with
# pytest 9.2 it silently stops grouping, and each worker then starts its own deployment.)
integration: install
	$(PY) -m pytest -m integration -n 2 --dist loadfile

bench: install orthanc
	$(PY) -m benchmarks.run_all

dashboard: install
	$(VENV)/bin/fedmpt dashboard --workdir $(WORKDIR)

# The README's screenshots, of a finished run (make demo, then fedmpt experiment compare);
# logs in with throwaway accounts that are removed again (dashboard/screenshots.py).
SITE ?= $(WORKDIR)/sites/hospital-a
screenshots: install browser
	$(PY) -m dashboard.screenshots --workdir $(WORKDIR) --site $(SITE) --out docs/screenshots

clean:
	rm -rf $(WORKDIR) .flwr .pytest_cache
