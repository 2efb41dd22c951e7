# kd — build, test, bench, install.
#
#   make            build build/libkd.a and bin/kd
#   make run        install missing packages, build, run the main job
#   make test       install missing packages, build, run every test suite,
#                   then the same suites under AddressSanitizer + UBSan
#   make sanitize   only the sanitizer pass
#   make fuzz       every libFuzzer harness for FUZZ_SECONDS (60) each, new
#                   inputs merged into fuzz/corpus/ (docs/fuzzing.md; clang)
#   make bench      benchmarks (installs python3-torch for the peer runs)
#   make MPI=0      build without Open MPI (dist/serial.c: one rank); the
#                   default links it when pkg-config finds it (make clean
#                   first when switching)
#   make install    PREFIX=/usr/local: bin/kd, lib/libkd.a, lib/libkd.so
#                   (soname libkd.so.MAJOR), include/kd/, lib/pkgconfig/kd.pc,
#                   share/man/man1/kd.1 (generated from kd's --help)
#
# Sources are found by folder: every .c in a module folder goes into
# libkd.a, every .c in tests/<module>/ into build/tests/test_<module>.

PREFIX  ?= /usr/local
BUILD   ?= build
CC      ?= cc
PKGS    := openblas sqlite3 yaml-0.1 zlib libxxhash jansson libprotobuf-c
# The ONNX schema is Debian's own (libonnx-dev; python3-onnx ships the same
# file): protoc-c turns it into C at build time, never copied into the tree.
ONNX_PROTO ?= $(firstword $(wildcard /usr/include/onnx/onnx.proto /usr/lib/python3/dist-packages/onnx/onnx.proto))
VERSION := $(shell sed -n 's/^\#define KD_VERSION "\(.*\)"/\1/p' core/kd_core.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
OPT     ?= -O3
SAN     ?=

WARN     = -std=c11 -Wall -Wextra -Wpedantic -Wshadow
CPPFLAGS += -I. -I$(BUILD)/gen -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
CFLAGS  ?= $(OPT) -g
# -fPIC: the same objects go into libkd.a and libkd.so.
CFLAGS  += -fPIC
# -fno-math-errno: kd never reads errno after sqrtf/expf, and without it the
# compiler cannot vectorise loops that call them (Adam's step: 3x faster).
CFLAGS  += $(WARN) -fno-math-errno $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
# The fuzz build (make fuzz-build; clang only): libkd instrumented for
# libFuzzer's coverage, harnesses linked with its driver.
ifeq ($(FUZZ),1)
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

# MPI (dist/, docs/scale.md): MPI=1 links Open MPI and builds dist/mpi.c,
# MPI=0 builds dist/serial.c (one rank). The default is 1 when pkg-config
# finds Open MPI (scripts/setup.sh installs it). Either kd runs alone
# exactly the same: MPI starts only under mpirun.
MPI     ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
CFLAGS  += $(shell pkg-config --cflags ompi-c)
LDLIBS  += $(shell pkg-config --libs ompi-c)
DIST_SRC := dist/launch.c dist/mpi.c
else
DIST_SRC := dist/launch.c dist/serial.c
endif

MODULES := core data store losses student teacher sampling diagnostics dist pipelines report
LIB_SRC := $(filter-out dist/%,$(foreach m,$(MODULES),$(wildcard $(m)/*.c))) $(DIST_SRC)
GEN_OBJ := $(BUILD)/obj/gen/onnx.pb-c.o
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(GEN_OBJ)
CLI_SRC := $(wildcard cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIB     := $(BUILD)/libkd.a
SHLIB   := $(BUILD)/libkd.so.$(VERSION)
KD      := bin/kd
ifeq ($(SAN),1)
KD      := $(BUILD)/bin/kd
endif

TEST_DIRS := $(patsubst tests/%/,%,$(sort $(dir $(wildcard tests/*/*.c))))
TEST_BINS := $(TEST_DIRS:%=$(BUILD)/tests/test_%)
FUZZ_SRC  := $(wildcard fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:fuzz/fuzz_%.c=$(BUILD)/fuzz/%)
FUZZ_BUILD ?= build-fuzz
FUZZ_CC   ?= clang
FUZZ_SECONDS ?= 60
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.SECONDARY:

.PHONY: all run test test-run sanitize setup setup-bench bench bench-run clean install tests examples \
        fuzz fuzz-build fuzz-short fuzz-bins

all: $(LIB) $(SHLIB) $(KD)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# ONNX's protobuf messages as C, generated from Debian's onnx.proto.
$(BUILD)/gen/onnx.pb-c.h: $(BUILD)/gen/onnx.pb-c.c ;
$(BUILD)/gen/onnx.pb-c.c: $(ONNX_PROTO)
	@[ -n "$(ONNX_PROTO)" ] || { echo "onnx.proto not found: apt-get install libonnx-dev (or run make setup)" >&2; exit 1; }
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(BUILD)/gen $(notdir $(ONNX_PROTO))

$(GEN_OBJ): $(BUILD)/gen/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/student/export_onnx.o: $(BUILD)/gen/onnx.pb-c.h

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHLIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libkd.so.$(SOMAJOR) $^ $(LDLIBS) -o $@

$(KD): $(CLI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

# One Criterion binary per module folder under tests/. (A pattern's % would
# be replaced inside patsubst, hence the helper function.)
test_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/$(1)/*.c))
.SECONDEXPANSION:
$(BUILD)/tests/test_%: $$(call test_objs,$$*) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(filter %.o,$^) $(LIB) $(LDLIBS) $(shell pkg-config --libs criterion 2>/dev/null) -o $@

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# bench_mlp's helpers live in bench/mlp/ (a .c directly in bench/ is a program).
BENCH_MLP_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard bench/mlp/*.c))
$(BUILD)/bench/bench_mlp: $(BUILD)/obj/bench/bench_mlp.o $(BENCH_MLP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(filter %.o,$^) $(LIB) $(LDLIBS) -o $@
# Example drivers that measure kd on real data (docs/experiments/).
examples: $(BUILD)/examples/wordnet-distill

$(BUILD)/examples/wordnet-distill: $(BUILD)/obj/examples/wordnet-distill/distill.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/fuzz/%: $(BUILD)/obj/fuzz/fuzz_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) -fsanitize=fuzzer,address,undefined $< $(LIB) $(LDLIBS) -o $@

tests: $(TEST_BINS) $(KD) $(BUILD)/examples/wordnet-distill

fuzz-bins: $(FUZZ_BINS)

setup:
	@scripts/setup.sh

setup-bench:
	@scripts/setup.sh --bench

# The main job: the example pipeline on the whole of Fashion-MNIST.
run: setup
	@$(MAKE) --no-print-directory all
	@scripts/main-job.sh

test: setup
	@$(MAKE) --no-print-directory test-run
	@$(MAKE) --no-print-directory sanitize

# The short fuzz pass (corpus replay plus a few seconds per harness) runs
# with the plain suites, not again under `make sanitize`: the fuzz build is
# sanitized already.
test-run: tests
	@scripts/setup-onnxruntime.sh || true
	@KD_BIN=$(abspath $(KD)) KD_BUILD=$(BUILD) KD_SAN=$(SAN) scripts/run-tests.sh $(TEST_BINS); s=$$?; \
	$(if $(filter 1,$(SAN)),,scripts/fuzz.sh --short || s=1;) exit $$s

sanitize:
	@$(MAKE) --no-print-directory BUILD=build-san SAN=1 OPT=-O1 test-run

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) FUZZ=1 CC=$(FUZZ_CC) OPT=-O1 fuzz-bins

fuzz:
	@FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh --seconds $(FUZZ_SECONDS)

fuzz-short:
	@FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz.sh --short

bench: setup-bench
	@$(MAKE) --no-print-directory bench-run

bench-run: $(BENCH_BINS) $(KD)
	@scripts/run-bench.sh $(BUILD)

# Public headers only (each module's kd_*.h; never *_impl.h), kept in their
# module folders so that #include "core/kd_core.h" works with -I.../include/kd.
# kd(1) from the program's own --help, so it covers every command.
$(BUILD)/man/kd.1: $(KD) scripts/gen-man.sh
	@mkdir -p $(dir $@)
	scripts/gen-man.sh $(KD) >$@.tmp && mv $@.tmp $@

install: all $(BUILD)/man/kd.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/kd \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(KD) $(DESTDIR)$(PREFIX)/bin/kd
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libkd.a
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib/libkd.so.$(VERSION)
	ln -sf libkd.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libkd.so.$(SOMAJOR)
	ln -sf libkd.so.$(SOMAJOR) $(DESTDIR)$(PREFIX)/lib/libkd.so
	for m in $(MODULES); do for h in $$m/kd_*.h; do [ -f "$$h" ] || continue; \
	  install -d $(DESTDIR)$(PREFIX)/include/kd/$$m; install -m 644 $$h $(DESTDIR)$(PREFIX)/include/kd/$$m/; done; done
	install -m 644 docs/library.md $(DESTDIR)$(PREFIX)/include/kd/README
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@PKGS@|$(PKGS)$(if $(filter 1,$(MPI)), ompi-c)|' \
	  scripts/kd.pc.in >$(DESTDIR)$(PREFIX)/lib/pkgconfig/kd.pc
	install -m 644 $(BUILD)/man/kd.1 $(DESTDIR)$(PREFIX)/share/man/man1/kd.1

clean:
	rm -rf build build-san build-fuzz bin

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
