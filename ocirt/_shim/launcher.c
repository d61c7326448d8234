/* The installed `ocirt`: CPython embedded, started only as far as ocirt needs.
 *
 * `python -I -S` spends ~2 ms of its ~7 ms start on the interpreter's "main"
 * phase: the path-based importers and zipimport, the `encodings` package,
 * text layers for sys.stdin/stdout/stderr, signal handlers.  `start` and
 * `delete` need none of it, and they are two of the lifecycle's three
 * interpreter starts.  This program stops after the "core" phase (PEP 587's
 * provisional `_init_main = 0`: built-in and frozen modules only), then
 * loads `ocirt._codebundle` out of the code bundle and lets it serve the
 * imports (docs/architecture.md, "The launcher").  Whatever needs the rest
 * -- a module the bundle lacks, sys.stdout, ocirt.cli -- calls
 * `_ocirt_launcher.finish()` (through `ocirt._codebundle.finish_start`),
 * which completes the start as `python -I -S` would have.  Without a usable
 * bundle it does that at once and runs the script launcher's lines.  The
 * core phase itself is trimmed: deep-frozen modules interned only when
 * loaded, no cyclic collector, the static data prefaulted, UTF-8 mode
 * without setlocale() (below, and docs/architecture.md).
 *
 * ocirt/_shim/build_launcher.py compiles it with a generated header
 * (OCIRT_CONFIG) in one of two layouts.  Fixed (`python -m ocirt.launcher`):
 * the venv's interpreter, the bundle and sys.path as absolute paths
 * (OCIRT_PYTHON, OCIRT_BUNDLE, OCIRT_PATHS).  Relocatable (the package
 * build, for a wheel that does not know where it will be installed): the
 * installation is found at run time from this program's own path, see
 * find_installation().  Both: the bytecode magic (OCIRT_MAGIC) and the
 * script launcher's entry lines (OCIRT_ENTRY); linked against the same
 * libpython the interpreter is built from.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <marshal.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include OCIRT_CONFIG

#ifdef OCIRT_CPYTHON_WRAPS
/* CPython 3.11's own internals, for the link-time wrappers below (the build
   enables them only for a 3.11 libpython that has the symbols). */
#define Py_BUILD_CORE 1
/* pycore_gc.h defines again what cpython/objimpl.h defined for the API. */
#undef _PyGC_FINALIZED
#include <internal/pycore_gc.h>
int _PyStaticCode_InternStrings(PyCodeObject *code); /* Objects/codeobject.c */
#endif

#define BUNDLE_HEADER 9 /* magic (4), optimization level (1), index length (4) */

#ifdef OCIRT_RELOCATABLE
/* site-packages relative to the scripts directory, in the install schemes
   that fix it (venv, --user, --prefix, Debian's /usr/local and /usr). */
static const char *const site_dirs[] = {OCIRT_SITE_DIRS NULL};
/* The build interpreter's `-I -S` sys.path, and its system site-packages
   (for an install outside a venv, whose dependencies may live there). */
static const char *const stdlib_paths[] = {OCIRT_STDLIB_PATHS NULL};
static const char *const system_site[] = {OCIRT_SYSTEM_SITE NULL};

#define MAX_PATHS 64
static const char *search_paths[MAX_PATHS];
static char python_path[PATH_MAX], bundle_path[PATH_MAX], site_path[PATH_MAX];

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int listed(const char *path, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(path, *list) == 0)
            return 1;
    return 0;
}

/* DIR (canonical: it comes from /proc/self/exe) joined with RELATIVE, whose
   leading "../" go up from DIR; -1 if it does not fit. */
static int join_up(char *out, size_t size, const char *dir, const char *relative)
{
    char base[PATH_MAX];
    if ((size_t)snprintf(base, sizeof(base), "%s", dir) >= sizeof(base))
        return -1;
    while (strncmp(relative, "../", 3) == 0) {
        char *slash = strrchr(base, '/');
        if (slash == NULL)
            return -1;
        *slash = '\0';
        relative += 3;
    }
    return (size_t)snprintf(out, size, "%s/%s", base, relative) < size ? 0 : -1;
}

static void add_path(size_t *count, const char *path)
{
    for (size_t i = 0; i < *count; i++)
        if (strcmp(search_paths[i], path) == 0)
            return;
    if (*count < MAX_PATHS - 1)
        search_paths[(*count)++] = path;
}

/* Where this launcher's ocirt is installed: the site-packages directory
   beside its bin (the first of site_dirs that holds ocirt; an editable
   build's that exists: ocirt is the checkout's, OCIRT_PACKAGE_PARENT), the
   interpreter (bin/python3 beside it, a venv's, else the build's) and
   sys.path.  0 if there is none: the caller starts as `python -I` would,
   with site, and lets it find ocirt. */
/* This program's path: /proc/self/exe, else (no /proc: a mount namespace
   without one, entered with nsenter; runc works there) the path execve was
   given, made absolute.  -1 if neither. */
static int own_path(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n > 0) {
        buf[n] = '\0';
        return 0;
    }
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    if (execfn == NULL || size < PATH_MAX || realpath(execfn, buf) == NULL)
        return -1;
    return 0;
}

static int find_installation(void)
{
    char exe_dir[PATH_MAX];
    if (own_path(exe_dir, sizeof(exe_dir)) < 0)
        return 0;
    char *slash = strrchr(exe_dir, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    int found = 0;
    for (const char *const *relative = site_dirs; *relative && !found; relative++) {
        if (join_up(site_path, sizeof(site_path), exe_dir, *relative) < 0)
            continue;
#ifdef OCIRT_PACKAGE_PARENT
        found = exists(site_path);
#else
        char probe[PATH_MAX];
        found = (size_t)snprintf(probe, sizeof(probe), "%s/ocirt/__init__.py", site_path) <
                    sizeof(probe) &&
                exists(probe);
#endif
    }
    if (!found)
        return 0;
#ifdef OCIRT_PACKAGE_PARENT
    const char *package_parent = OCIRT_PACKAGE_PARENT;
#else
    const char *package_parent = site_path;
#endif
    if ((size_t)snprintf(bundle_path, sizeof(bundle_path), "%s/ocirt/__pycache__/%s",
                         package_parent, OCIRT_BUNDLE_NAME) >= sizeof(bundle_path))
        return 0;
    int has_python = (size_t)snprintf(python_path, sizeof(python_path), "%s/python3", exe_dir) <
                         sizeof(python_path) &&
                     exists(python_path);
    int venv = has_python && !listed(site_path, system_site);
    if (!has_python)
        snprintf(python_path, sizeof(python_path), "%s", OCIRT_BASE_PYTHON);
    size_t count = 0;
    add_path(&count, package_parent);
    add_path(&count, site_path);
    for (const char *const *path = stdlib_paths; *path; path++)
        add_path(&count, *path);
    for (const char *const *path = system_site; *path && !venv; path++)
        add_path(&count, *path);
    search_paths[count] = NULL;
    return 1;
}

static const char *base_python(void)
{
    return OCIRT_BASE_PYTHON;
}
#else
static const char *const search_paths[] = {OCIRT_PATHS NULL};
static const char python_path[] = OCIRT_PYTHON;
static const char bundle_path[] = OCIRT_BUNDLE;

static int find_installation(void)
{
    return 1;
}

static const char *base_python(void)
{
    return OCIRT_PYTHON;
}
#endif

/* -- _ocirt_launcher.finish(): the main phase, on demand ---------------------- */
static PyObject *launcher_finish(PyObject *self, PyObject *unused)
{
    static int finishing; /* the main phase imports _signal: see BundleFinder */
    (void)self;
    (void)unused;
    if (!Py_IsInitialized() && !finishing) {
        finishing = 1;
        PyStatus status = _Py_InitializeMain();
        finishing = 0;
        if (PyStatus_Exception(status)) {
            PyErr_Format(PyExc_RuntimeError, "ocirt: the interpreter's start failed: %s",
                         status.err_msg ? status.err_msg : "unknown error");
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef launcher_methods[] = {
    {"finish", launcher_finish, METH_NOARGS,
     "Complete the interpreter's start (sys.path, the path finder, sys.stdout ...)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef launcher_module = {
    PyModuleDef_HEAD_INIT, "_ocirt_launcher", NULL, -1, launcher_methods,
};

static PyObject *init_launcher_module(void)
{
    return PyModule_Create(&launcher_module);
}

/* -- the core phase ------------------------------------------------------------ */
/* FOUND: the installation's interpreter and paths, no site (-I -S); else
   the build interpreter's, with site (-I): the slow start that finds ocirt
   wherever that interpreter's site-packages put it. */
static void start_core(int argc, char **argv, int found)
{
    PyStatus status;
    PyPreConfig preconfig;
    PyPreConfig_InitPythonConfig(&preconfig);
    preconfig.isolated = 1; /* -I */
    /* -X utf8 and no setlocale(): file names, argv and the text layers are
       UTF-8 with surrogateescape (bytes that are not UTF-8 round-trip, as
       ocirt reads /proc and writes JSON) whatever LANG the caller has, as
       under the C or C.UTF-8 locale a manager usually runs runtimes with;
       and the start reads no locale files (~0.06 ms of CPU per command). */
    preconfig.utf8_mode = 1;
    preconfig.configure_locale = 0;
    status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status))
        Py_ExitStatusException(status);

    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.isolated = 1;    /* -I: no environment, no user site, no script dir */
    config.site_import = !found; /* -S */
    config.parse_argv = 0;  /* the arguments are ocirt's */
    config._init_main = 0;  /* stop after the core phase */
    status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status))
        /* The venv's interpreter: sys.executable and sys.prefix as with the script. */
        status = PyConfig_SetBytesString(&config, &config.executable,
                                         found ? python_path : base_python());
    config.module_search_paths_set = found;
    for (const char *const *path = search_paths; found && *path && !PyStatus_Exception(status);
         path++) {
        wchar_t *wide = Py_DecodeLocale(*path, NULL);
        if (wide == NULL)
            status = PyStatus_NoMemory();
        else
            status = PyWideStringList_Append(&config.module_search_paths, wide);
        PyMem_RawFree(wide);
    }
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        Py_ExitStatusException(status);
}

/* sys.argv: the main phase would set it; the core phase has none. */
static int set_argv(int argc, char **argv)
{
    PyObject *list = PyList_New(argc);
    if (list == NULL)
        return -1;
    for (int i = 0; i < argc; i++) {
        PyObject *arg = PyUnicode_DecodeFSDefault(argv[i]);
        if (arg == NULL) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SET_ITEM(list, i, arg);
    }
    int rc = PySys_SetObject("argv", list);
    Py_DECREF(list);
    return rc;
}

static int read_full(int fd, void *buf, size_t size, off_t offset)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, (char *)buf + done, size - done, offset + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Unmarshal SIZE bytes at OFFSET of FD; NULL with no exception set if unreadable. */
static PyObject *read_marshal(int fd, size_t size, off_t offset)
{
    char *buf = PyMem_RawMalloc(size ? size : 1);
    if (buf == NULL)
        return NULL;
    PyObject *obj = NULL;
    if (read_full(fd, buf, size, offset) == 0)
        obj = PyMarshal_ReadObjectFromString(buf, (Py_ssize_t)size);
    PyMem_RawFree(buf);
    return obj;
}

/* The index entry's (origin, is_package, mtime_ns, size, offset, length) of
   ocirt._codebundle, if its source is the one the bundle was made from. */
static int codebundle_entry(PyObject *index, PyObject **origin, off_t *offset, size_t *length)
{
    PyObject *entry = PyDict_GetItemString(index, "ocirt._codebundle");
    if (entry == NULL || !PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 6)
        return -1;
    PyObject *path = PyUnicode_EncodeFSDefault(PyTuple_GET_ITEM(entry, 0));
    if (path == NULL)
        return -1;
    struct stat st;
    int rc = stat(PyBytes_AS_STRING(path), &st);
    Py_DECREF(path);
    long long mtime_ns = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 2));
    long long size = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 3));
    long long where = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 4));
    long long count = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 5));
    if (rc != 0 || PyErr_Occurred() || where < 0 || count <= 0 || st.st_size != size ||
        (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != mtime_ns)
        return -1; /* edited since the bundle was written: the full start */
    *origin = PyTuple_GET_ITEM(entry, 0);
    *offset = (off_t)where;
    *length = (size_t)count;
    return 0;
}

/* Run ocirt._codebundle out of the bundle and call its boot(path, fd,
   index, data_start).  1: booted; 0: no usable bundle (nothing is left set). */
static int boot_from_bundle(void)
{
    int fd = open(bundle_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    unsigned char head[BUNDLE_HEADER];
    PyObject *index = NULL, *code = NULL, *module = NULL, *result = NULL;
    if (read_full(fd, head, sizeof(head), 0) < 0 || memcmp(head, OCIRT_MAGIC, 4) != 0 ||
        head[4] != 0)
        goto unusable;
    size_t index_length = (size_t)head[5] | (size_t)head[6] << 8 | (size_t)head[7] << 16 |
                          (size_t)head[8] << 24;
    off_t data_start = BUNDLE_HEADER + (off_t)index_length;
    index = read_marshal(fd, index_length, BUNDLE_HEADER);
    if (index == NULL || !PyDict_Check(index))
        goto unusable;
    PyObject *origin;
    off_t offset;
    size_t length;
    if (codebundle_entry(index, &origin, &offset, &length) < 0)
        goto unusable;
    code = read_marshal(fd, length, data_start + offset);
    if (code == NULL || !PyCode_Check(code))
        goto unusable;
    module = PyImport_AddModule("ocirt._codebundle"); /* borrowed */
    if (module == NULL)
        goto unusable;
    Py_INCREF(module);
    PyObject *globals = PyModule_GetDict(module);
    if (PyDict_SetItemString(globals, "__file__", origin) < 0 ||
        PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto unusable;
    result = PyEval_EvalCode(code, globals, globals);
    if (result == NULL)
        goto unusable;
    Py_DECREF(result);
    result = PyObject_CallMethod(module, "boot", "siOL", bundle_path, fd, index,
                                 (long long)data_start);
    if (result == NULL)
        goto unusable;
    Py_DECREF(result);
    Py_DECREF(module);
    Py_DECREF(code);
    Py_DECREF(index);
    return 1; /* the finder owns fd now */

unusable:
    /* A broken or stale bundle only costs the speed: start the usual way. */
    PyErr_Clear();
    if (module != NULL) {
        PyObject *modules = PyImport_GetModuleDict();
        if (PyDict_DelItemString(modules, "ocirt._codebundle") < 0)
            PyErr_Clear();
        Py_DECREF(module);
    }
    Py_XDECREF(code);
    Py_XDECREF(index);
    close(fd);
    return 0;
}

/* An exception left by ocirt: print it (or exit as SystemExit says) with the
   whole interpreter up, as python's own main would. */
static int report(void)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyObject *done = launcher_finish(NULL, NULL);
    if (done == NULL)
        PyErr_Clear();
    Py_XDECREF(done);
    PyErr_Restore(type, value, traceback);
    PyErr_Print(); /* SystemExit: exits here */
    Py_FinalizeEx();
    return 1;
}

/* -- CPython's start, trimmed at link time ------------------------------------- */
#ifdef OCIRT_CPYTHON_WRAPS
/* The linker sends libpython's calls of these functions to the __wrap_
   versions below (-Wl,--wrap, ocirt/_shim/build_launcher.py); __real_ is the
   original.  Only calls between libpython's object files are redirected. */

/* No cyclic garbage collection from the interpreter's first allocation: the
   core phase's type readying and imports ran a few collections (~3% of a
   short command's CPU) before ocirt.fastcli could turn the collector off, as
   it does for every command; ocirt.cli turns it on again for those that may
   run for long (run, exec, events, trace).  (Every interpreter starts so;
   ocirt makes no other than the main one.) */
void __real__PyGC_InitState(struct _gc_runtime_state *gcstate);
void __wrap__PyGC_InitState(struct _gc_runtime_state *gcstate)
{
    __real__PyGC_InitState(gcstate);
    gcstate->enabled = 0;
}

/* The deep-frozen modules' strings interned when a module is first loaded,
   not all at the start: CPython's _Py_Deepfreeze_Init interns the names and
   constants of every code object of the ~20 modules frozen into libpython
   (~770 code objects, ~6% of a short command's CPU), most of which ocirt
   never runs (the code bundle serves its modules; the core phase runs only
   importlib._bootstrap).  In 3.11 that function does nothing else.  The
   frozen importer reaches a module's code only through its
   _Py_get_<module>_toplevel(), so every module that runs is interned before
   its first line, as CPython would have left it. */
int __wrap__Py_Deepfreeze_Init(void)
{
    return 0;
}

/* CODE and the code objects among its constants, recursively. */
static int intern_code_tree(PyObject *code)
{
    if (_PyStaticCode_InternStrings((PyCodeObject *)code) < 0)
        return -1;
    PyObject *consts = ((PyCodeObject *)code)->co_consts;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts); i++) {
        PyObject *item = PyTuple_GET_ITEM(consts, i);
        if (PyCode_Check(item) && intern_code_tree(item) < 0)
            return -1;
    }
    return 0;
}

/* A module's code, interned on its first load.  Interning fails only for
   want of memory; the code is still correct (names are compared by value
   where they are not the same object), only a little slower. */
static PyObject *interned_once(PyObject *code, int *done)
{
    if (!*done && code != NULL) {
        *done = 1;
        if (intern_code_tree(code) < 0)
            PyErr_Clear();
    }
    return code;
}

#define OCIRT_LAZY_GETTER(name)                                                \
    PyObject *__real__Py_get_##name##_toplevel(void);                          \
    PyObject *__wrap__Py_get_##name##_toplevel(void)                           \
    {                                                                          \
        static int interned;                                                   \
        return interned_once(__real__Py_get_##name##_toplevel(), &interned);   \
    }
OCIRT_DEEPFROZEN_MODULES(OCIRT_LAZY_GETTER)
#endif

/* -- the interpreter's static data, faulted in at once -------------------------- */
/* The linker's bounds of this program's initialized data (.data, which holds
   CPython's static types, .PyRuntime, the deep-frozen modules' objects), and
   of those objects alone when the build put them in an output section of
   their own (its linker script, ocirt/_shim/build_launcher.py). */
extern char __data_start[], _edata[];
#ifdef OCIRT_DEEPFROZEN_SECTION
extern char ocirt_deepfrozen_start[], ocirt_deepfrozen_end[];
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* The pages holding START to END (if any) copied at once. */
static void populate_pages(uintptr_t start, uintptr_t end)
{
    if (end <= start)
        return;
    start &= ~(uintptr_t)4095;
    end = (end + 4095) & ~(uintptr_t)4095;
    (void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
}

/* The core phase writes to nearly every page of CPython's static types and
   runtime state (reference counts, type slots, ...): a copy-on-write fault for
   each 4 kB page, ~1.5 us of CPU apiece.  One madvise copies them all in the
   kernel instead, a little cheaper per page.  Not the deep-frozen modules'
   objects (~215 pages): with their strings interned only when a module is
   loaded, a short command writes to ~30 of them (importlib._bootstrap's), and
   copying the others cost more than those faults.  A kernel without
   MADV_POPULATE_WRITE refuses it (EINVAL): the faults come as before. */
static void populate_static_data(void)
{
    uintptr_t start = (uintptr_t)__data_start, end = (uintptr_t)_edata;
#ifdef OCIRT_DEEPFROZEN_SECTION
    uintptr_t frozen = (uintptr_t)ocirt_deepfrozen_start;
    uintptr_t frozen_end = (uintptr_t)ocirt_deepfrozen_end;
    if (start <= frozen && frozen <= frozen_end && frozen_end <= end) {
        populate_pages(start, frozen);
        populate_pages(frozen_end, end);
        return;
    }
#endif
    populate_pages(start, end);
}

int main(int argc, char **argv)
{
    populate_static_data();
    if (PyImport_AppendInittab("_ocirt_launcher", init_launcher_module) < 0)
        return 120;
    /* What the main phase's signal setup would do first: a closed pipe is
       EPIPE, not death (ocirt.fastcli.exit_now reports it). */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
    int found = find_installation();
    start_core(argc, argv, found);
    if (set_argv(argc, argv) < 0)
        return report();
    if (!found || !boot_from_bundle()) {
        PyObject *done = launcher_finish(NULL, NULL);
        if (done == NULL)
            return report();
        Py_DECREF(done);
        int rc = PyRun_SimpleString(OCIRT_ENTRY); /* prints its own errors */
        if (Py_FinalizeEx() < 0)
            return 120;
        return rc == 0 ? 0 : 1;
    }
    PyObject *fastcli = PyImport_ImportModule("ocirt.fastcli");
    PyObject *result = fastcli ? PyObject_CallMethod(fastcli, "main", NULL) : NULL;
    Py_XDECREF(fastcli);
    if (result == NULL)
        return report();
    Py_DECREF(result); /* main() exits: a return is a plain success */
    return Py_FinalizeEx() < 0 ? 120 : 0;
}
