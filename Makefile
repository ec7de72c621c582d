# ntm - one entry point: all, check, demo, bench, fuzz, install.
# Out-of-tree objects go to $(BUILD); `make SAN=1 BUILD=build-asan` is the
# ASan/UBSan build used by `make check`.

VERSION	:= 0.1.0
PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
LIBDIR	?= $(PREFIX)/lib
INCDIR	?= $(PREFIX)/include
MANDIR	?= $(PREFIX)/share/man
DATADIR	?= $(PREFIX)/share
UNITDIR	?= $(PREFIX)/lib/systemd/system
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
DESTDIR	?=
BUILD	?= build
CC	?= cc

PKGS	:= libevent libevent_openssl libevent_pthreads libcurl jansson \
	   libsodium sqlite3 libcares openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN	:= -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
CFLAGS	?= -O2 -g
CFLAGS	+= -std=c11 -D_GNU_SOURCE -fPIC $(WARN) $(PKG_CFLAGS) -Ilib -Ilib/core -Ilib/io -Icmd/common \
	   -DNTM_VERSION_STR=\"$(VERSION)\"
LDLIBS	+= $(PKG_LIBS) -lpthread
ifeq ($(SAN),1)
CFLAGS	+= -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS	+= -fsanitize=address,undefined
endif

# lib/core: the protocol core (libsodium, jansson and libc only; checked by
# scripts/layers-check.sh); lib/io: the I/O glue (files, SQLite, threads,
# TLS, libevent, libcurl).
CORE_SRCS   := $(sort $(wildcard lib/core/*.c))
CORE_OBJS   := $(CORE_SRCS:%.c=$(BUILD)/%.o)
LIB_SRCS    := $(CORE_SRCS) $(sort $(wildcard lib/io/*.c))
LIB_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/%.o)
COMMON_SRCS := $(sort $(wildcard cmd/common/*.c))
COMMON_OBJS := $(COMMON_SRCS:%.c=$(BUILD)/%.o)
DAEMONS     := ntm-as ntm-dc ntm-rs ntm-cs
PROGS       := ntm $(DAEMONS)
BINS        := $(PROGS:%=$(BUILD)/%)
UNIT_SRCS   := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS   := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS   := $(sort $(wildcard fuzz/fuzz_*.c))

.PHONY: all lib tools deps check unit asan bats netns demo demo-stop bench fuzz fuzz-long \
	install uninstall clean docs-check layers-check
all: lib $(BINS)
lib: $(BUILD)/libntm.a $(BUILD)/libntm.so $(BUILD)/ntm.pc

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libntm.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libntm.so: $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libntm.so.0 $(LDFLAGS) -o $(BUILD)/libntm.so.0 $^ $(LDLIBS)
	ln -sf libntm.so.0 $@

# Written again at install time, so the installed file names that PREFIX.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|'
$(BUILD)/ntm.pc: lib/ntm.pc.in Makefile
	@mkdir -p $(BUILD)
	$(PC_SED) $< > $@

# Each binary: its own cmd/NAME/*.c (and $(3), more of its sources), the
# shared cmd/common code, libntm.a.
define prog_rule
$(1)_OBJS := $$(patsubst %.c,$(BUILD)/%.o,$$(sort $$(wildcard cmd/$(1)/*.c)) $(3))
$(BUILD)/$(1): $$($(1)_OBJS) $(COMMON_OBJS) $(BUILD)/libntm.a
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) $(2)
endef
# The agent's user-space stack: Debian's lwIP, only where it is used.
LWIP_CFLAGS := $(shell pkg-config --cflags lwip 2>/dev/null)
LWIP_LIBS   := $(shell pkg-config --libs lwip 2>/dev/null || echo -llwip)
# The agent (`ntm up`) lives in cmd/ntm/agent/ and is linked into ntm.
AGENT_SRCS  := $(sort $(wildcard cmd/ntm/agent/*.c))
$(BUILD)/cmd/ntm/agent/%.o: CFLAGS += -Icmd/ntm
$(BUILD)/cmd/ntm/agent/stack.o $(BUILD)/cmd/ntm/agent/streams.o \
$(BUILD)/cmd/ntm/agent/forwards.o: CFLAGS += $(LWIP_CFLAGS)
$(eval $(call prog_rule,ntm,-lreadline $(LWIP_LIBS),$(AGENT_SRCS)))
# ntm opens libcurl itself when a command first needs it (cmd/ntm/libcurl.c).
$(BUILD)/ntm: LDLIBS := $(filter-out -lcurl,$(LDLIBS))
$(foreach d,$(DAEMONS),$(eval $(call prog_rule,$(d),)))
# The AS may keep its store in PostgreSQL (cmd/ntm-as/store.c): libpq,
# only where it is used.
PQ_PKGS   := libpq
PQ_CFLAGS := $(shell pkg-config --cflags $(PQ_PKGS) 2>/dev/null)
PQ_LIBS   := $(shell pkg-config --libs $(PQ_PKGS) 2>/dev/null || echo -lpq)
$(BUILD)/cmd/ntm-as/%.o: CFLAGS += $(PQ_CFLAGS)
$(BUILD)/ntm-as: LDLIBS += $(PQ_LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(BUILD)/libntm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libntm.a $(LDLIBS)

# Test tools driven by the bats suites.
TOOLS := $(BUILD)/tests/signreq $(BUILD)/tests/xunwrap $(BUILD)/tests/hsmitm $(BUILD)/tests/sealogin
TOOLS += $(BUILD)/tests/rsflood $(BUILD)/tests/loadgen $(BUILD)/tests/flood $(BUILD)/tests/csload
tools: $(TOOLS)
$(TOOLS): $(BUILD)/tests/%: tests/tools/%.c $(BUILD)/libntm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libntm.a $(LDLIBS)

deps:
	@./scripts/deps.sh

unit: $(UNIT_BINS)
	@./scripts/run-unit.sh $(UNIT_BINS)

asan:
	@$(MAKE) --no-print-directory SAN=1 BUILD=build-asan unit

bats: all $(TOOLS)
	@./scripts/run-bats.sh tests/bats

netns: all $(TOOLS)
	@./scripts/run-bats.sh tests/netns

docs-check: all
	@./scripts/docs-check.sh

layers-check: lib
	@./scripts/layers-check.sh

# deps + build + unit + ASan/UBSan unit + docs drift + bats (+ netns as root);
# its builds use every CPU (CHECK_JOBS)
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check: deps
	@$(MAKE) --no-print-directory -j$(CHECK_JOBS) all $(TOOLS)
	@CHECK_JOBS=$(CHECK_JOBS) ./scripts/check.sh

# Like check, the demo installs what it needs first (a fresh machine has
# nothing), then builds.
demo: deps
	@$(MAKE) --no-print-directory all
	@./scripts/demo.sh

demo-stop:
	@./scripts/demo.sh stop

bench: all $(TOOLS)
	@./bench/run.sh

fuzz:
	@./scripts/fuzz.sh $(FUZZ_SRCS)

# Each harness for FUZZ_LONG_SECONDS, or to FUZZ_LONG_RUNS executions (then
# no time limit unless FUZZ_LONG_SECONDS is given too; neither: 600 s);
# prints executions, seconds and coverage. FUZZ=fuzz/fuzz_NAME.c ... runs
# only those. `make fuzz-long FUZZ_LONG_RUNS=10000000` is issue 13's run.
FUZZ		?= $(FUZZ_SRCS)
FUZZ_LONG_RUNS	?=
FUZZ_LONG_SECONDS ?= $(if $(FUZZ_LONG_RUNS),0,600)
fuzz-long:
	@FUZZ_SECONDS=$(FUZZ_LONG_SECONDS) FUZZ_RUNS=$(FUZZ_LONG_RUNS) ./scripts/fuzz.sh $(FUZZ)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(DATADIR)/bash-completion/completions \
	    $(DESTDIR)$(DATADIR)/zsh/vendor-completions \
	    $(DESTDIR)$(DATADIR)/fish/vendor_completions.d \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(USERUNITDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 $(BUILD)/libntm.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/libntm.so.0 $(DESTDIR)$(LIBDIR)/
	ln -sf libntm.so.0 $(DESTDIR)$(LIBDIR)/libntm.so
	$(PC_SED) lib/ntm.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/ntm.pc
	install -m 644 lib/ntm.h lib/core/ntm-core.h lib/io/ntm-io.h $(DESTDIR)$(INCDIR)/
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/*.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 completions/ntm.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/ntm
	install -m 644 completions/_ntm $(DESTDIR)$(DATADIR)/zsh/vendor-completions/_ntm
	install -m 644 completions/ntm.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/ntm.fish
	for r in as dc rs cs; do \
		sed 's|@BINDIR@|$(BINDIR)|g' dist/systemd/ntm-$$r.service \
		    > $(DESTDIR)$(UNITDIR)/ntm-$$r.service || exit 1; \
	done
	sed 's|@BINDIR@|$(BINDIR)|g' dist/systemd/ntm-agent.service \
	    > $(DESTDIR)$(USERUNITDIR)/ntm-agent.service

uninstall:
	cd $(DESTDIR)$(BINDIR) && rm -f $(PROGS)
	rm -f $(DESTDIR)$(LIBDIR)/libntm.a $(DESTDIR)$(LIBDIR)/libntm.so* \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/ntm.pc $(DESTDIR)$(INCDIR)/ntm.h \
	    $(DESTDIR)$(INCDIR)/ntm-core.h $(DESTDIR)$(INCDIR)/ntm-io.h \
	    $(DESTDIR)$(UNITDIR)/ntm-as.service $(DESTDIR)$(UNITDIR)/ntm-dc.service \
	    $(DESTDIR)$(UNITDIR)/ntm-rs.service $(DESTDIR)$(UNITDIR)/ntm-cs.service \
	    $(DESTDIR)$(USERUNITDIR)/ntm-agent.service

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
