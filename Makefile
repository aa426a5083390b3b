# The two commands (see README):
#   make run   install what is missing, build, start the gateway on its default config
#   make test  install what is missing (test peers too), build with -Werror, run every test
# Other targets: make build, make asan, make fuzz SECONDS=N, make bench, make clean.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
STATE_DIR  ?= $(CURDIR)/var
SECONDS    ?= 10

.PHONY: all build run test test-unit test-integration asan fuzz bench deps deps-test clean

all: build

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh build test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSG_WERROR=ON

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@scripts/run-demo.sh $(BUILD)/sealgate "$(STATE_DIR)"

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSG_WERROR=ON -DSG_SANITIZE=ON

asan: deps-test $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# Every test: unit + integration on the normal build, then the whole suite
# again under ASan/UBSan, then the fuzz corpora replayed (and a short fuzz).
test: deps-test $(BUILD)/CMakeCache.txt $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)
	@if [ -f fuzz/CMakeLists.txt ]; then $(MAKE) --no-print-directory fuzz-check; fi

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

test-integration: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L integration

$(FUZZ_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSG_FUZZ=ON -DSG_TESTS=OFF -DSG_WERROR=ON

fuzz: deps-test $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	scripts/fuzz.sh $(FUZZ_BUILD) $(SECONDS)

fuzz-check: $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	FUZZ_SEED=1 scripts/fuzz.sh $(FUZZ_BUILD) 10

# Every benchmark, each against its named baseline in the same run.
bench: deps-test build
	bench/relay.sh $(CURDIR)/$(BUILD)/sealgate
	bench/seal.sh $(BUILD)
	bench/keys.sh $(BUILD)
	bench/lookup.sh $(BUILD)
	bench/memory.sh $(BUILD)
	bench/deliver.sh $(CURDIR)/$(BUILD)/sealgate
	bench/rekey.sh $(BUILD)
	bench/policy.sh $(BUILD)
	bench/domain.sh $(BUILD)
	bench/load.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
