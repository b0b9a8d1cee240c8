# Thin wrapper around CMake. Every target installs missing Debian packages
# first (scripts/install-deps.sh reads scripts/debian-packages.txt).
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DATA ?= ./data
LISTEN ?= 127.0.0.1:8080

.PHONY: all deps build run test test-asan bench clean format

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j$(JOBS)

run: build
	$(BUILD)/vitalog serve --data $(DATA) --listen $(LISTEN)

test: build
	bash tests/setup.sh
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The same tests built with AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVL_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	bash tests/setup.sh
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

bench: build
	bash bench/run.sh
	bash bench/ledger.sh

format:
	clang-format -i src/*.c src/*/*.c src/*/*.h include/vitalog/*.h tests/*/*.c tests/unit/*/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
