# Branchline: the two commands a newcomer needs.
#   make demo   build everything into .venv and run the edge with simulated phones
#   make test   same bootstrap, install the test peers (SIPp ...), run the whole suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed

# System packages the tests talk to: name of a binary -> Debian package.
TEST_TOOLS := sipp:sip-tester mosquitto:mosquitto chromium:chromium chromedriver:chromium-driver \
              socat:socat node:nodejs npm:npm nft:nftables sshd:openssh-server supervisord:supervisor \
              tmux:tmux openssl:openssl pip3:python3-pip sudo:sudo

.PHONY: demo test venv system-deps lint bench-quick clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Reinstall when the build description or a Cython source changes.
$(STAMP): $(VENV)/bin/python pyproject.toml setup.py $(shell find cython_ext \( -name '*.pyx' -o -name '*.pxd' \) 2>/dev/null)
	$(PIP) install -q -e '.[dev]'
	$(PY) -c "import cython_ext; print('kernels:', cython_ext.implementations())"
	@# the firmware's type stubs live apart: they shadow the stdlib (time.pyi, machine.pyi)
	$(PIP) install -q --target $(VENV)/micropython-stubs micropython-rp2-stubs==1.27.0.post1 || \
	  echo "micropython-rp2-stubs not installed: the firmware type check will install it or skip"
	touch $(STAMP)

# MicroPython (WebAssembly) for the firmware tests, from the npm lock file
tests/micropython/node_modules: tests/micropython/package-lock.json
	-cd tests/micropython && npm ci --no-audit --no-fund --silent

venv: $(STAMP)

system-deps:
	@missing=""; for pair in $(TEST_TOOLS); do bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing system packages:$$missing (run as root or: sudo apt-get install$$missing); tests that need them are skipped"; fi; \
	fi

demo: venv
	$(VENV)/bin/branchline demo $(if $(DEMO_ARGS),$(DEMO_ARGS),--keep-running)

test: venv system-deps lint tests/micropython/node_modules
	BRANCHLINE_REQUIRE_COMPILED=1 $(PY) -m pytest -q -p no:cacheprovider

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy edge_core appliance cython_ext fleet images provisioning tui

bench-quick: venv
	$(PY) bench/sip_cps.py --quick

clean:
	rm -rf build $(VENV) *.egg-info
	find cython_ext -name '*.so' -delete -o -name '*.c' -delete
