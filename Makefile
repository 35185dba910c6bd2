# natagent — build, test and lab entry points.
#
# Sources are discovered by directory, so adding a module needs no edit here:
#   nat/*.c, quic/*.c      -> build/libnat.a, build/libquic.a (sans-I/O cores)
#   agent/*.c              -> build/libagent.a, except the two mains below
#   agent/natagent_main.c  -> natagent          agent/natctl_main.c -> natctl
#   tests/unit/test_*.c    -> build/tests/test_*  (one binary per module, TAP output)
#   tests/fuzz/*.c         -> build/fuzz/*        (libFuzzer, clang only)
#   bpf/*.bpf.c            -> build/*.bpf.o + build/*.skel.h

CC       ?= cc
CLANG    ?= clang
BPFTOOL  ?= bpftool
PKGS     := libbpf libngtcp2 libngtcp2_crypto_gnutls gnutls nettle hogweed libmnl
B        := build

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -D_GNU_SOURCE -I. -I$(B)
LDLIBS   += -lminiupnpc
BIN      := .
ifeq ($(SANITIZE),1)
B        := build-san
BIN      := build-san
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

NAT_SRC   := $(wildcard nat/*.c)
QUIC_SRC  := $(wildcard quic/*.c)
MAINS     := agent/natagent_main.c agent/natctl_main.c
AGENT_SRC := $(filter-out $(MAINS),$(wildcard agent/*.c))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
FUZZ_SRC  := $(wildcard tests/fuzz/*.c)
BPFT_SRC  := $(wildcard tests/bpf/*.c)
BENCH_SRC := $(wildcard bench/*.c)
BPF_SRC   := $(wildcard bpf/*.bpf.c)
HEADERS   := $(wildcard nat/*.h quic/*.h agent/*.h bpf/*.h tests/unit/*.h)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
LIBNAT   := $(B)/libnat.a
LIBQUIC  := $(B)/libquic.a
LIBAGENT := $(B)/libagent.a
LIBS     := $(LIBAGENT) $(LIBQUIC) $(LIBNAT)
BPF_OBJ  := $(patsubst bpf/%.bpf.c,$(B)/%.bpf.o,$(BPF_SRC))
BPF_SKEL := $(patsubst bpf/%.bpf.c,$(B)/%.skel.h,$(BPF_SRC))
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))
BPFT_BIN := $(patsubst tests/bpf/%.c,$(B)/bpftests/%,$(BPFT_SRC))
BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

.PHONY: all deps test unit demo bench fuzz clean install
.DELETE_ON_ERROR:
# Objects and the skeleton header come from pattern rules; keep them, or make
# deletes them as intermediates and the XDP test finds no build.
.SECONDARY:

all: $(BIN)/natagent $(BIN)/natctl $(BPF_OBJ) $(UNIT_BIN) $(BPFT_BIN)

$(B)/obj/%.o: %.c $(HEADERS) $(BPF_SKEL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(LIBNAT): $(call obj,$(NAT_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^
$(LIBQUIC): $(call obj,$(QUIC_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^
$(LIBAGENT): $(call obj,$(AGENT_SRC))
	@mkdir -p $(dir $@); rm -f $@; $(AR) rcs $@ $^

$(BIN)/natagent: $(call obj,agent/natagent_main.c) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)
$(BIN)/natctl: $(call obj,agent/natctl_main.c) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(B)/tests/%: $(call obj,tests/unit/%.c) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# Benchmark tools (load generators): bench/X.c -> $(B)/bench/X.
$(B)/bench/%: $(call obj,bench/%.c) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# BPF program tests (BPF_PROG_TEST_RUN): need root, run by tests/run.sh.
$(B)/bpftests/%: $(call obj,tests/bpf/%.c) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# BPF: compiled for the bpf target against the UAPI headers, then a skeleton
# header that agent/bpf.c embeds.
BPF_CFLAGS := -O2 -g -Wall -target bpf -D__TARGET_ARCH_x86 \
	-I. -I/usr/include/$(shell $(CC) -dumpmachine)
$(B)/%.bpf.o: bpf/%.bpf.c bpf/*.h
	@mkdir -p $(dir $@)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@
$(B)/%.skel.h: $(B)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

# Fuzzers: each harness links the cores it exercises from source, built with
# clang's libFuzzer and ASan/UBSan regardless of SANITIZE.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -I. -I$(B) $(PKG_CFLAGS) \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
$(B)/fuzz/%: tests/fuzz/%.c $(NAT_SRC) $(QUIC_SRC) $(AGENT_SRC) $(HEADERS) $(BPF_SKEL)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(NAT_SRC) $(QUIC_SRC) $(AGENT_SRC) $(PKG_LIBS) $(LDLIBS)

FUZZ_SECONDS ?= 60
fuzz: $(FUZZ_BIN)
	@scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

deps:
	@scripts/deps.sh

# `make test` runs everything (the rendezvous test also drives rdvload, a
# bench tool); `make unit` only the unit binaries (what CI also runs once
# under SANITIZE=1).
test: deps
	@$(MAKE) --no-print-directory all $(B)/bench/rdvload
	@tests/run.sh all $(B)
unit: all
	@tests/run.sh unit $(B)

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@bench/run.sh $(B)

PREFIX ?= /usr/local
install: natagent natctl
	install -D -m 0755 natagent $(DESTDIR)$(PREFIX)/sbin/natagent
	install -D -m 0755 natctl $(DESTDIR)$(PREFIX)/bin/natctl
	install -d -m 0755 $(DESTDIR)/etc/systemd/system
	sed 's|/usr/local/sbin/natagent|$(PREFIX)/sbin/natagent|' systemd/natagent@.service \
		> $(DESTDIR)/etc/systemd/system/natagent@.service
	chmod 0644 $(DESTDIR)/etc/systemd/system/natagent@.service

clean:
	rm -rf build build-san natagent natctl
