# The README's two commands: `make run` (set up, build, run the demo) and `make test` (set up, build, run every test).
PRESET ?= release
BUILD_DIR := build/$(PRESET)
QTOS := $(BUILD_DIR)/bin/qtos
JOBS ?= 2

.PHONY: run test deps configure build bench asan tsan clean

run: build
	$(QTOS) demo

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

asan:
	$(MAKE) test PRESET=asan

tsan:
	$(MAKE) test PRESET=tsan

clean:
	rm -rf build
