# budgetd build. Sources are found by wildcard: the layers under engine/
# (base, core, sim, io, config, cmd) and models/ form libbudgetd.a, engine/cmd/main.c
# the binary; bench/sim/ (simulator, scenarios, oracle, bandit problems)
# forms libbdsim.a for the benchmarks and the tests that use it; each
# tests/unit/<module>/test_*.c, tests/integration/test_*.c,
# tests/adapter/test_*.c and bench/bench_*.c is its own program, built at the same path under
# $(BUILD) (tests/unit/core/test_alloc.c -> $(BUILD)/tests/unit/core/test_alloc).
# tests/support/*.c (shared fixtures) is linked into every test program.
# BUILD selects the output tree so that the sanitizer build never mixes
# objects with the normal one.

BUILD    ?= build
CC       ?= cc
PKGS     := rdkafka gsl hiredis libcjson zlib yaml-0.1 libmicrohttpd
WARN     := -std=c11 -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror
OPT      ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -Iinclude -Iengine -Ibench -Itests/support $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   += $(WARN) $(OPT) -pthread
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread
TESTLIBS := -lcriterion

LAYERS    := base core sim io config cmd
LIB_SRC   := $(filter-out engine/cmd/main.c,$(foreach l,$(LAYERS),$(wildcard engine/$(l)/*.c))) $(wildcard models/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
SUP_SRC   := $(wildcard tests/support/*.c)
SUP_OBJ   := $(SUP_SRC:%.c=$(BUILD)/obj/%.o)
# unit tests by module (core, models, config, io, sim), mirroring the
# source layers; integration tests run the binary or need redis/Kafka
UNIT_SRC  := $(wildcard tests/unit/test_*.c tests/unit/*/test_*.c)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
# the adapter conformance suite (tests/adapter/README.md): any adapter
# command, the reference adapter by default
ADAPT_SRC := $(wildcard tests/adapter/test_*.c)
TEST_BIN  := $(UNIT_SRC:%.c=$(BUILD)/%) $(INTEG_SRC:%.c=$(BUILD)/%) $(ADAPT_SRC:%.c=$(BUILD)/%)
TEST_OBJ  := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o) $(INTEG_SRC:%.c=$(BUILD)/obj/%.o) $(ADAPT_SRC:%.c=$(BUILD)/obj/%.o)
BENCH_PROG:= $(wildcard bench/bench_*.c bench/gen_*.c)
BENCH_LIB := $(filter-out $(BENCH_PROG),$(wildcard bench/*.c))
BENCH_OBJ := $(BENCH_LIB:%.c=$(BUILD)/obj/%.o)
SIM_SRC   := $(wildcard bench/sim/*.c)
SIM_OBJ   := $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
BENCH_BIN := $(patsubst %.c,$(BUILD)/%,$(BENCH_PROG))
# libFuzzer targets (tests/fuzz/fuzz_*.c, seeds in tests/fuzz/corpus/NAME/):
# built by `make fuzz` with clang into build-fuzz, never by `all`.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_OPT  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link

.PHONY: all setup test test-only sanitize fuzz fuzz-bin fuzz-smoke demo bench bench-quality clean
.DELETE_ON_ERROR:
# keep the test objects (make would delete them as intermediates and
# rebuild them on the next change of a shared header)
.SECONDARY: $(TEST_OBJ)

all: $(BUILD)/budgetd $(TEST_BIN) $(BENCH_BIN)

setup:
	@scripts/setup.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC  $<"
	@$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libbudgetd.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/libbdsim.a: $(SIM_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/budgetd: $(BUILD)/obj/engine/cmd/main.o $(BUILD)/libbudgetd.a
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Tests may include private headers and sources by their path from the
# repository root (models/model_internal.h, bench/sim/oracle.c).
$(BUILD)/obj/tests/%.o: CPPFLAGS += -I.

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(SUP_OBJ) $(BUILD)/libbdsim.a $(BUILD)/libbudgetd.a
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) $(TESTLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(BENCH_OBJ) $(BUILD)/libbdsim.a $(BUILD)/libbudgetd.a
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(BUILD)/libbudgetd.a
	@mkdir -p $(dir $@)
	@echo "  LD  $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@

# make test: installs what is missing, builds, runs every suite, then the
# same suites under ASan+UBSan, then a short run of each fuzz target (CI
# runs exactly this).
test: setup
	$(MAKE) all
	scripts/run-tests.sh $(BUILD)
	$(MAKE) sanitize
	$(MAKE) fuzz-smoke

test-only: all
	scripts/run-tests.sh $(BUILD)

sanitize:
	$(MAKE) BUILD=build-san OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    BUDGETD_SANITIZE=1 scripts/run-tests.sh build-san

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang OPT="$(FUZZ_OPT)" LDFLAGS="-fsanitize=address,undefined" fuzz-bin

fuzz-bin: $(FUZZ_BIN)

# Each target for a few seconds from its seed corpus (scripts/fuzz-smoke.sh).
fuzz-smoke: fuzz
	scripts/fuzz-smoke.sh build-fuzz

demo: setup
	$(MAKE) $(BUILD)/budgetd
	scripts/demo.sh $(BUILD)/budgetd

bench: all
	@for b in $(filter $(BUILD)/bench/bench_%,$(BENCH_BIN)); do case $$b in *quality*|*whatif*) ;; *) echo "== $$b"; $$b || exit 1;; esac; done

# decision quality: the closed-loop scenarios and the what-if honesty check
bench-quality: all
	@for b in $(filter %quality %whatif,$(BENCH_BIN)); do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
