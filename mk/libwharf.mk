# libwharf.mk — builds, installs and exercises libwharf, the C client library.
#
# Included by the top-level Makefile (`include mk/libwharf.mk`) anywhere
# after BUILD, CFLAGS and DEB_PACKAGES are set — the end is fine; the default
# goal stays what it was. Uses the includer's $(CC), $(CFLAGS), $(BUILD) and
# its `deps` target; defines only LIBWHARF_* names and these targets:
#
#   $(BUILD)/libwharf.a, $(BUILD)/libwharf.so   the library (`make libwharf`)
#   install    PREFIX (default /usr/local), DESTDIR: lib/libwharf.{a,so,so.0},
#              include/wharf.h, lib/pkgconfig/wharf.pc
#   examples   every examples/*.c linked with $(BUILD)/libwharf.a, into
#              $(BUILD)/examples/; `test` and `blackbox` depend on it because
#              tests/blackbox/examples.test.mjs runs them (and `deps` also
#              installs the sqlite3 shell, which that test uses)
#
# The library is src/client plus the util and http files it uses and llhttp,
# compiled once more with -fPIC. Both the archive and the shared object are made from one
# relocatable object in which every symbol but wharf_* is made local, so the
# library's helpers (buf_append, xmalloc, crypto_*) can never collide with a
# program's own functions of the same name, statically or dynamically.

LIBWHARF_VERSION := 0.1.0
LIBWHARF_SONAME  := libwharf.so.0
LIBWHARF_SRCS    := $(wildcard src/client/*.c) src/util/buf.c src/util/crypto.c src/util/log.c \
                    src/http/http_server.c src/http/http_syntax.c
LIBWHARF_OBJS    := $(LIBWHARF_SRCS:%.c=$(BUILD)/pic/%.o) $(LLHTTP_NAMES:%=$(BUILD)/pic/llhttp/%.o)
LIBWHARF_LIBS    := -luv -lcurl -ljansson -lcrypto -lpthread
LIBWHARF_EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))
PREFIX  ?= /usr/local
LD      ?= ld
AR      ?= ar
OBJCOPY ?= objcopy

# The examples' test reads the ETL example's database with the sqlite3 shell.
DEB_PACKAGES += sqlite3

LIBWHARF_SAVED_GOAL := $(.DEFAULT_GOAL)

.PHONY: libwharf install examples
test blackbox: examples

libwharf: $(BUILD)/libwharf.a $(BUILD)/libwharf.so

$(BUILD)/pic/%.o: %.c | deps
	@mkdir -p $(dir $@)
	@echo "  CC    $< (PIC)"
	@$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(LLHTTP_NAMES:%=$(BUILD)/pic/llhttp/%.o): $(BUILD)/pic/llhttp/%.o: | deps
	@mkdir -p $(dir $@)
	@echo "  CC    $(LLHTTP_DIR)/$*.c (PIC)"
	@$(CC) $(CFLAGS) $(LLHTTP_CFLAGS) -fPIC -c $(LLHTTP_DIR)/$*.c -o $@

$(BUILD)/libwharf.o: $(LIBWHARF_OBJS)
	@echo "  LD    $@"
	@$(LD) -r -o $@.tmp $^
	@$(OBJCOPY) --wildcard --keep-global-symbol='wharf_*' $@.tmp
	@mv $@.tmp $@

$(BUILD)/libwharf.a: $(BUILD)/libwharf.o
	@echo "  AR    $@"
	@rm -f $@
	@$(AR) rcs $@ $<

$(BUILD)/libwharf.so: $(BUILD)/libwharf.o
	@echo "  LINK  $@"
	@$(CC) -shared -Wl,-soname,$(LIBWHARF_SONAME) -Wl,--no-undefined -o $@ $< $(LIBWHARF_LIBS)

install: $(BUILD)/libwharf.a $(BUILD)/libwharf.so
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 include/wharf.h $(DESTDIR)$(PREFIX)/include/wharf.h
	install -m 644 $(BUILD)/libwharf.a $(DESTDIR)$(PREFIX)/lib/libwharf.a
	install -m 755 $(BUILD)/libwharf.so $(DESTDIR)$(PREFIX)/lib/$(LIBWHARF_SONAME)
	ln -sf $(LIBWHARF_SONAME) $(DESTDIR)$(PREFIX)/lib/libwharf.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(LIBWHARF_VERSION)|g' wharf.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/wharf.pc

examples: $(LIBWHARF_EXAMPLES)

$(BUILD)/examples/etl: LIBWHARF_EXAMPLE_LIBS := -lsqlite3

$(BUILD)/examples/%: examples/%.c $(BUILD)/libwharf.a | deps
	@mkdir -p $(dir $@)
	@echo "  LINK  $@"
	@$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libwharf.a $(LIBWHARF_EXAMPLE_LIBS) $(LIBWHARF_LIBS) -lm

-include $(LIBWHARF_OBJS:.o=.d) $(LIBWHARF_EXAMPLES:=.d)

# Restore the includer's default goal (empty means "the next target defined").
.DEFAULT_GOAL := $(LIBWHARF_SAVED_GOAL)
