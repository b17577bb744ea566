# The README's two commands: `make run` (set up, build, run the demo) and `make test` (set up, build, run every test).
PRESET ?= release
BUILD_DIR := build/$(PRESET)
QTOS := $(BUILD_DIR)/bin/qtos
JOBS ?= 2

# The sanitizer runs of CI: the suites (test folders) built and run under asan and tsan.
SAN_SUITES ?= cpu runtime models api
empty :=
space := $(empty) $(empty)
SAN_LABELS := ^($(subst $(space),|,$(strip $(SAN_SUITES))))$$
SAN_TARGETS := qtos $(addprefix qtos_test_,$(SAN_SUITES))

.PHONY: run test deps configure build bench asan tsan sanitize ci clean

run: build
	$(QTOS) serve

test: build
	ctest --preset $(PRESET)

deps:
	@bash scripts/setup.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ]; then cmake --preset $(PRESET); fi

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

bench: build
	bash scripts/bench.sh $(BUILD_DIR)

# `make sanitize PRESET=asan|tsan`: build and run SAN_SUITES (default cpu runtime api) under that sanitizer.
sanitize: configure
	cmake --build $(BUILD_DIR) -j$(JOBS) --target $(SAN_TARGETS)
	ctest --preset $(PRESET) -L '$(SAN_LABELS)' $(if $(SAN_EXCLUDE),-E '$(SAN_EXCLUDE)')

# What CI runs (.ci/run): every test in the release build, then the sanitizer runs.
# ThreadSanitizer runs the suites whose threads are our own (the bus, services, the HTTP server, `qtos serve`, the
# notifier, and the verbs' threaded engines through the binary); the cpu and models suites' parallelism is TBB over
# disjoint slices and LibTorch's pool, checked under AddressSanitizer, and leaving them out of the tsan build keeps CI
# within its 30 minutes.
TSAN_SUITES ?= runtime api
ci: test
	$(MAKE) sanitize PRESET=asan
	$(MAKE) sanitize PRESET=tsan SAN_SUITES="$(TSAN_SUITES)"

asan:
	$(MAKE) test PRESET=asan

tsan:
	$(MAKE) test PRESET=tsan

clean:
	rm -rf build
