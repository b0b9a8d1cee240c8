# Thin wrapper around CMake. Every target installs missing Debian packages
# first (scripts/install-deps.sh reads scripts/debian-packages.txt).
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
# builds use every core; ctest runs two tests at a time (the tests do not
# depend on timing, so more would pass too, but CI machines have two cores)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
TEST_JOBS ?= 2
DATA ?= ./data
LISTEN ?= 127.0.0.1:8080

.PHONY: all deps build run test test-asan test-tsan bench bench-scale bench-ingest bench-clinical \
	clean format \
	format-check

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
	cd $(BUILD) && ctest --output-on-failure -j$(TEST_JOBS)

# The same tests built with AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVL_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	bash tests/setup.sh
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(TEST_JOBS)

# The tests labelled "concurrent" in tests/CMakeLists.txt (store, in-process
# HTTP server, black-box HTTP cases, kill -9 durability) built with
# ThreadSanitizer. The first report ends the process with exit status 66,
# which fails the test; tests/tsan.supp holds third-party suppressions only.
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVL_TSAN=ON
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	bash tests/setup.sh
	cd $(TSAN_BUILD) && TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -L concurrent -j$(TEST_JOBS)

bench: build
	bash bench/run.sh
	bash bench/ledger.sh

# Searches over a generated database of SCALE_OBSERVATIONS (default 1000000)
# Observations; see bench/README.md. Builds its own Release in build-scale.
bench-scale: build
	bash bench/scale.sh

# Wearable ingest: 1,000,000 readings over HTTP and a 1 GB export.xml (bench/ingest.sh).
bench-ingest: build
	bash bench/ingest.sh

# $lastn, $stats, _include and a Bulk export on the 10,000,000-Observation
# database of bench-scale (CLIN_DATA; bench/clinical.sh).
bench-clinical: build
	bash bench/clinical.sh

# C sources in the style of .clang-format (src/fhir/search_params.c is
# generated and left as the generator writes it).
FORMAT_FILES = $(filter-out src/fhir/search_params.c,$(wildcard src/*.c src/*/*.c src/*/*.h \
	include/vitalog/*.h tests/unit/*.h tests/unit/*/*.c tests/fuzz/*.c bench/*.c))

format: deps
	clang-format -i $(FORMAT_FILES)

# Fails when a file differs from what `make format` would make of it (CI).
format-check: deps
	clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-release-gcc build-release-clang
