# tulip - plain GNU make, no configure step. Every workflow is a target:
#   make            libraries and tools under build/
#   make demo       the showcase          make test      every CUnit suite
#   make bench      JSON-line benchmarks  make coverage  gcov + lcov report
#   make install PREFIX=/usr/local DESTDIR=   make uninstall
# Options: CC=clang, SANITIZE=address,undefined, VALGRIND=1, TL_BACKEND=poll.

CC       ?= cc
AR       ?= ar
PREFIX   ?= /usr/local
DESTDIR  ?=
LIBDIR   ?= $(PREFIX)/lib
INCDIR   ?= $(PREFIX)/include
PKGDIR   ?= $(LIBDIR)/pkgconfig

VERSION_MAJOR := $(shell sed -n 's/^\#define TL_VERSION_MAJOR \([0-9]*\)/\1/p' include/tulip/core.h)
VERSION_MINOR := $(shell sed -n 's/^\#define TL_VERSION_MINOR \([0-9]*\)/\1/p' include/tulip/core.h)
VERSION_PATCH := $(shell sed -n 's/^\#define TL_VERSION_PATCH \([0-9]*\)/\1/p' include/tulip/core.h)
VERSION  := $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SONAME   := libtulip.so.1

# Coroutine contexts (src/task): CORO=asm, the hand-written switch (x86-64,
# aarch64; the default there) or CORO=ucontext (portable; the default
# elsewhere). The non-default one builds in a folder of its own.
CORO_ARCH := $(shell $(CC) -dumpmachine 2>/dev/null)
CORO_DEFAULT := $(if $(filter x86_64-% aarch64-%,$(CORO_ARCH)),asm,ucontext)
CORO     ?= $(CORO_DEFAULT)
CORO_FLAGS := $(if $(filter asm,$(CORO)),-DTL_CORO_ASM,-DTL_CORO_UCONTEXT)
ifneq ($(CORO),$(CORO_DEFAULT))
B        ?= build/$(CORO)$(if $(SANITIZE),-sanitize)$(if $(COVERAGE),-coverage)
endif

# Each flavour builds in a folder of its own, so switching never mixes objects.
ifneq ($(SANITIZE),)
B        ?= build/sanitize
SANFLAGS := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifneq ($(COVERAGE),)
B        ?= build/coverage
SANFLAGS := --coverage -O0
else
B        ?= build
SANFLAGS :=
endif

OPT      ?= -O2
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS := -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) -Iinclude -fPIC -fvisibility=hidden -MMD -MP
LDLIBS   := -lpthread

# TLS (src/tls) with BoringSSL from Debian's android-libboringssl-dev, which
# keeps its headers and libraries in android/ folders (so OpenSSL's libssl,
# if installed, is never picked up: the libraries are linked by full path,
# with an rpath). TLS=0, or a compiler whose target has no BoringSSL (cross
# builds), builds src/tls/tls_none.c instead: the same ABI, TL_ENOTSUP.
BSSL_INC ?= /usr/include/android
BSSL_LIB ?= /usr/lib/$(shell $(CC) -print-multiarch 2>/dev/null)/android
TLS      ?= $(if $(and $(wildcard $(BSSL_INC)/openssl/is_boringssl.h),$(wildcard $(BSSL_LIB)/libssl.so)),1,0)
ifeq ($(TLS),1)
TLS_SRC  := $(filter-out src/tls/tls_none.c,$(wildcard src/tls/*.c))
TLS_LIBS := -Wl,-rpath,$(BSSL_LIB) $(BSSL_LIB)/libssl.so $(BSSL_LIB)/libcrypto.so
else
TLS_SRC  := src/tls/tls_none.c
TLS_LIBS :=
endif

LIB_SRC  := $(wildcard src/core/*.c src/backend/*.c src/loop/*.c src/future/*.c src/sync/*.c src/executor/*.c src/transport/*.c src/process/*.c) $(TLS_SRC)
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
# src/task: coroutine contexts (C, and the asm switches in .S files).
LIB_SRC  += $(wildcard src/task/*.c)
LIB_OBJ  += $(patsubst %.c,$(B)/obj/%.o,$(wildcard src/task/*.c)) \
	$(patsubst %.S,$(B)/obj/%.o,$(wildcard src/task/*.S))
ALL_CFLAGS += $(CORO_FLAGS)
TEST_SRC := $(wildcard tests/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/obj/%.o)
BENCH_SRC := $(wildcard tools/bench/*.c)
# The raw BoringSSL memory-BIO loop (the limit TLS echo is judged against)
# is the one tool that includes BoringSSL; TL_BENCH_TLS says it may.
BENCH_TLS_CFLAGS = $(if $(filter 1,$(TLS)),-isystem $(BSSL_INC) -DTL_BENCH_TLS,)
DEMO_SRC := $(wildcard tools/demo/*.c)
ECHO_SRC := $(wildcard tools/echo/*.c)

SO       := $(B)/lib/$(SONAME)
A        := $(B)/lib/libtulip.a
TESTS    := $(B)/bin/tulip-tests
BENCH    := $(B)/bin/tulip-bench
DEMO     := $(B)/bin/tulip-demo
ECHO     := $(B)/bin/tulip-echo

# Programs link the static library (tests reach the same code the .so has);
# the install test links the shared one through pkg-config.
TOOL_CFLAGS := -std=c11 $(WARN) -Wno-missing-prototypes $(CFLAGS) $(SANFLAGS) -Iinclude -MMD -MP

VALGRIND_CMD := valgrind --quiet --error-exitcode=99 --leak-check=full \
	--show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
	--child-silent-after-fork=yes --track-fds=no
RUN_PREFIX := $(if $(VALGRIND),$(VALGRIND_CMD),)

.PHONY: all lib tools test check deps demo bench coverage install uninstall clean abi-check abi-baseline

all: lib tools

lib: $(SO) $(B)/lib/libtulip.so $(A)

tools: $(BENCH) $(DEMO) $(ECHO)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Only src/tls sees BoringSSL's headers (as system headers: its own code is
# not held to tulip's warnings).
$(B)/obj/src/tls/%.o: src/tls/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -isystem $(BSSL_INC) -DTL_TLS_INTERNAL -c $< -o $@

$(B)/obj/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CORO_FLAGS) $(CFLAGS) $(SANFLAGS) -fPIC -MMD -MP -c $< -o $@

$(B)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) -Isrc -c $< -o $@

$(SO): $(LIB_OBJ) src/tulip.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(SANFLAGS) -Wl,-soname,$(SONAME) -Wl,--version-script=src/tulip.map \
		$(if $(SANITIZE),,-Wl,-z,defs) -o $@ $(LIB_OBJ) $(TLS_LIBS) $(LDLIBS)

$(B)/lib/libtulip.so: $(SO)
	ln -sf $(SONAME) $@

$(A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(TESTS): $(TEST_OBJ) $(A)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -o $@ $(TEST_OBJ) $(A) -lcunit $(TLS_LIBS) $(LDLIBS)

$(BENCH): $(BENCH_SRC) $(A)
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) $(BENCH_TLS_CFLAGS) -o $@ $(BENCH_SRC) $(A) $(TLS_LIBS) $(LDLIBS) -lm

$(DEMO): $(DEMO_SRC) $(A)
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) -o $@ $(DEMO_SRC) $(A) $(TLS_LIBS) $(LDLIBS)

$(ECHO): $(ECHO_SRC) $(A)
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) -o $@ $(ECHO_SRC) $(A) $(TLS_LIBS) $(LDLIBS)

# Debian packages the build, the tests and the reports need; installed only
# when missing, and only as root (otherwise the list is printed).
deps:
	@sh tools/deps.sh

test: deps
	@$(MAKE) --no-print-directory lib $(TESTS)
	TL_TEST_BUILD=$(B) $(RUN_PREFIX) $(TESTS) $(SUITES)

check: test

demo: deps
	@$(MAKE) --no-print-directory $(DEMO)
	$(DEMO)

bench:
	@$(MAKE) --no-print-directory $(BENCH)
	$(BENCH) $(BENCHES)

coverage: deps
	rm -rf build/coverage coverage/html coverage/tulip.info
	$(MAKE) --no-print-directory COVERAGE=1 test
	lcov --quiet --capture --rc lcov_branch_coverage=1 --directory build/coverage/obj/src \
		--output-file coverage/tulip.info 2>&1 | grep -v 'redefined at' || true
	genhtml --quiet --branch-coverage --output-directory coverage/html coverage/tulip.info 2>&1 \
		| grep -v 'redefined at' || true
	@lcov --summary --rc lcov_branch_coverage=1 coverage/tulip.info 2>&1 | grep -E 'lines|branches'
	@echo "coverage report: coverage/html/index.html"

$(B)/tulip.pc: tools/tulip.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
		-e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(TLS_LIBS) $(LDLIBS)|' $< > $@

install: lib $(B)/tulip.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR)/tulip $(DESTDIR)$(PKGDIR)
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtulip.so
	install -m 644 $(A) $(DESTDIR)$(LIBDIR)/libtulip.a
	install -m 644 include/tulip.h $(DESTDIR)$(INCDIR)/tulip.h
	install -m 644 include/tulip/*.h $(DESTDIR)$(INCDIR)/tulip/
	install -m 644 $(B)/tulip.pc $(DESTDIR)$(PKGDIR)/tulip.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libtulip.so \
		$(DESTDIR)$(LIBDIR)/libtulip.a $(DESTDIR)$(INCDIR)/tulip.h $(DESTDIR)$(PKGDIR)/tulip.pc
	rm -rf $(DESTDIR)$(INCDIR)/tulip

clean:
	rm -rf build coverage/html coverage/tulip.info

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(DEMO).d $(BENCH).d $(ECHO).d

# The exported ABI against the stored baseline (libabigail). Added functions
# pass; removed or changed ones fail. `make abi-baseline` records a new one.
ABI_BASE := tools/abi/libtulip.abi
abi-check: lib
	abidw --no-corpus-path --headers-dir include --out-file $(B)/libtulip.abi $(SO)
	@abidiff --headers-dir1 include --headers-dir2 include $(ABI_BASE) $(B)/libtulip.abi; rc=$$?; \
	if [ $$((rc & 11)) -ne 0 ]; then echo "abi-check: incompatible ABI change (abidiff $$rc)"; exit 1; fi; \
	echo "abi-check: compatible with $(ABI_BASE)"

abi-baseline: lib
	@mkdir -p $(dir $(ABI_BASE))
	abidw --no-corpus-path --headers-dir include --out-file $(ABI_BASE) $(SO)

# aarch64: cross-build the library and the test runner, run the coroutine
# and task suites under qemu-user. tools/deps-aarch64.sh installs the cross
# compiler, qemu and arm64 CUnit (linked statically; the guest's glibc is the
# cross sysroot's, matching its loader: the multiarch libc6:arm64 that CUnit
# pulls in is a different build, and mixing the two hangs fork() under qemu).
# `make test-aarch64 CORO=ucontext` too.
AARCH64_CC     ?= aarch64-linux-gnu-gcc
AARCH64_SYSROOT ?= /usr/aarch64-linux-gnu
AARCH64_B      ?= build/aarch64$(if $(filter ucontext,$(CORO)),-ucontext)
AARCH64_SUITES ?= coro task task_gather task_wait task_shield task_as_completed \
	task_timeout task_taskgroup sync_await sync_await_cancel sync_await_late \
	sync_await_queue sync_await_nomem sync_lock sync_queue
.PHONY: test-aarch64
test-aarch64:
	@sh tools/deps-aarch64.sh
	@mkdir -p $(AARCH64_B)/cunit/include $(AARCH64_B)/cunit/lib
	@ln -sfn /usr/include/CUnit $(AARCH64_B)/cunit/include/CUnit
	@ln -sf /usr/lib/aarch64-linux-gnu/libcunit.a $(AARCH64_B)/cunit/lib/libcunit.a
	@$(MAKE) --no-print-directory CC=$(AARCH64_CC) AR=aarch64-linux-gnu-ar B=$(AARCH64_B) \
		CFLAGS="$(CFLAGS) -I$(AARCH64_B)/cunit/include" \
		LDLIBS="-L$(AARCH64_B)/cunit/lib -lpthread" TLS=0 lib $(AARCH64_B)/bin/tulip-tests
	qemu-aarch64 -L $(AARCH64_SYSROOT) -E LD_LIBRARY_PATH=$(AARCH64_SYSROOT)/lib \
		$(AARCH64_B)/bin/tulip-tests $(AARCH64_SUITES)
