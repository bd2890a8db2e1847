# anonface developer commands. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
# The CPU build of torch 2.13.0; an environment that already has a torch keeps it.
TORCH_SPEC ?= torch==2.13.0
BUILD_TOOLS := "scikit-build-core>=0.10" "pybind11>=2.12" ninja "cmake>=3.26"
PYTEST_ARGS ?=
# The versions the suite last passed with; `make constraints` refreshes them. Empty: open ranges.
CONSTRAINTS ?= .ci/constraints.txt
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: venv build test demo bench sanitize cuda-check lint clean constraints

venv: $(VENV)/.tools-installed

$(VENV)/.tools-installed:
	$(PYTHON) -m venv $(VENV)
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install "$(TORCH_SPEC)"
	$(VPY) -m pip install $(PIN) $(BUILD_TOOLS) numpy pytest hypothesis
	touch $@

# Build isolation is off on purpose: the kernels must be compiled against the torch they run with.
build: venv
	$(VPY) -m pip install $(PIN) --no-build-isolation -e ".[test,eval,cluster]"

# A suite that collects nothing (pytest's exit status 5) fails too.
test: build
	$(VPY) -m pytest python_tests $(PYTEST_ARGS)

# Anonymizes scikit-image's astronaut photo and a short clip made from it (nothing is downloaded).
demo: build
	$(VPY) examples/demo.py out/demo

bench: build
	$(VPY) benchmarks/bench_roi.py

# CPU kernels built with AddressSanitizer + UndefinedBehaviorSanitizer, then the kernel tests.
sanitize: venv
	ANONFACE_SANITIZE="address;undefined" ANONFACE_CUDA=OFF $(VPY) -m pip install --no-build-isolation \
		-Cbuild-dir=build/sanitize -e ".[test]"
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" ASAN_OPTIONS=detect_leaks=0 \
		$(VPY) -c "import anonface, sys; sys.exit(0 if anonface.build_info()['sanitized'] else 'sanitize: the build is not instrumented')"
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(VPY) -m pytest python_tests/ops -q -p no:cacheprovider -x $(PYTEST_ARGS); rc=$$?; \
	$(VPY) -m pip install --no-build-isolation -e ".[test]" >/dev/null; exit $$rc

# ruff on the Python, clang-format (.clang-format) on csrc/; CI runs it.
lint: venv
	$(VPY) -m pip install -q $(PIN) ruff clang-format
	$(VENV)/bin/ruff check .
	$(VENV)/bin/clang-format --dry-run --Werror csrc/*.h csrc/*.cpp csrc/cpu/* csrc/cuda/*

# Compile-check every .cu file with nvcc against torch's headers (no GPU, no link).
cuda-check: venv
	VPY=$(VPY) bash .ci/cuda_compile_check.sh

# Rebuild .ci/constraints.txt from the newest versions the open ranges allow, after the suite passes.
constraints:
	rm -rf .venv-constraints
	$(MAKE) test VENV=.venv-constraints CONSTRAINTS=
	{ sed -n '1,3p' .ci/constraints.txt; .venv-constraints/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^anonface' | sed 's/^torch==\([0-9.]*\)+cpu$$/torch==\1/'; } > .ci/constraints.new
	mv .ci/constraints.new .ci/constraints.txt

clean:
	rm -rf build dist *.egg-info anonface/_C*.so
