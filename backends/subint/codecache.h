/* backends/subint/codecache.h - the process's cache of compiled actor modules
 * (codecache.c). Private to the plugin; include after <Python.h>. */
#ifndef TETHER_SUBINT_CODECACHE_H
#define TETHER_SUBINT_CODECACHE_H

/* At most this many modules, and this many bytes of marshalled code, are
 * kept; past either, the least recently used entries are dropped. */
#define CODECACHE_MAX 64
#define CODECACHE_BYTES (32u << 20)

/* Every open backend state holds the cache (s_open), and lets go when the
 * state is freed (state_unref): the last release frees every entry. */
void codecache_hold(void);
void codecache_release(void);

/* The loader's `code_of(path)` (module.c's loader_src), a METH_O function:
 * the code object of the actor module at `path` (an absolute path, str),
 * unmarshalled from the cache, or compiled from the file as importlib's
 * SourceFileLoader does (compile(source, path, "exec", dont_inherit=True))
 * and cached, keyed by path, device, inode, size and mtime. A new code
 * object of the calling interpreter, or NULL with its exception set (the
 * OSError of open or read, SyntaxError...). Static, in a plugin never
 * unloaded: PyCFunction_New may point at it. */
extern PyMethodDef codecache_code_of;

#endif
