# The README's two commands, plus sanitizer and formatting helpers.
#   make run   install what is missing, build, and run the gateway (against the bundled
#              Userpilot emulator when USERPILOT_API_KEY is not set)
#   make test  install what is missing, build, and run every test
#   make fuzz  build the libFuzzer targets (fuzz/, with clang) and run each for FUZZ_SECONDS
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

# Seconds each fuzz target runs in `make fuzz`; its clang build directory.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz

# Extra gateway flags for `make run`: make run ARGS='--listen=127.0.0.1:50051'
ARGS ?=

.PHONY: deps configure build gateway run test test-image test-asan test-tsan fuzz format clean

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

# The gateway binary alone, through the same install script and configuration as `make test`.
gateway: configure
	@cmake --build $(BUILD) -j$(JOBS) --target userpilot-gateway

# `make run` builds only what it runs: the gateway, the emulator and the CLI.
run: configure
	@cmake --build $(BUILD) -j$(JOBS) --target userpilot-gateway userpilot-emulator userpilotctl
	@./scripts/run.sh $(BUILD) $(ARGS)

# Every test but the container image's (label image: it needs root, buildah and a few minutes;
# `make test-image` runs it, and CI runs both).
test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) --timeout 300 -LE '^image' $(CTEST_ARGS)

# Builds the container image around the gateway that `make test` built, runs it and checks it
# (tests/image); writes $(BUILD)/tests/image/report.txt.
test-image: build
	@ctest --test-dir $(BUILD) --output-on-failure --timeout 1500 -L '^image$$'
	@cat $(BUILD)/tests/image/report.txt

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (Debug, build-asan/).
test-asan:
	@$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DUPGW_SANITIZE=asan -DCMAKE_BUILD_TYPE=Debug"

# The component suites under ThreadSanitizer (Debug, build-tsan/): service/'s GoogleTest and Redis
# suites. TSan sees synchronisation only in instrumented code, and Debian's gRPC, protobuf and
# Abseil libraries are not instrumented: every hand-over through a gRPC completion queue reads
# as a data race. So the build holds service/ and tests/mocks/ alone (UPGW_COMPONENT_SUITES_ONLY),
# the suites that run a gRPC server or channel in the process are left out (TSAN_BLIND_SUITES;
# the ASan suite and the end-to-end tests run them), and tests/tsan.supp names the one race
# report that comes from protobuf's own lazy initialisation.
TSAN_BLIND_SUITES := CappedListenerGrpcTest|GatewayServerTest|GatewayServiceAuthTest|GatewayServiceTest|GrpcServerInterceptorTest|TlsServerTest
test-tsan:
	@TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp $(TSAN_OPTIONS)" $(MAKE) test \
	  BUILD=build-tsan \
	  CMAKE_FLAGS="-DUPGW_SANITIZE=tsan -DCMAKE_BUILD_TYPE=Debug -DUPGW_COMPONENT_SUITES_ONLY=ON" \
	  CTEST_ARGS="-L '^(unit|redis)' -E '^($(TSAN_BLIND_SUITES))\.'"

# The fuzz targets in a clang build of their own ($(FUZZ_BUILD)), each run for FUZZ_SECONDS from
# its seeds (fuzz/corpus) and what earlier runs found ($(FUZZ_BUILD)/corpus); a crash fails it and
# leaves its input in $(FUZZ_BUILD)/crashes. `make test` runs 100,000 inputs each (fuzz.short).
fuzz: deps
	@./fuzz/run.sh --build-dir $(FUZZ_BUILD) --seconds $(FUZZ_SECONDS) --jobs $(JOBS)

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	@rm -rf build build-asan build-tsan build-fuzz
