/* ocirt-init, stage 2 of the container's init.
 *
 * The Python init (ocirt/process/init.py) sets the whole container up, then
 * executes this small static program from a sealed memfd.  It is what a
 * created-but-not-started container is: a process of a few hundred KiB
 * instead of a forked CPython, and whose /proc/self/exe is a sealed copy,
 * never a host file a container process could write through.
 *
 *   argv: ocirt-init LISTEN_FD SECCOMP HOOKS_FD PATH ARG0 [ARG...]
 *   envp: the container process's environment
 *
 * (`ocirt exec` runs it too, as "ocirt-init exec ...": see exec_main below.)
 *
 * It blocks in accept() on LISTEN_FD, a unix socket bound in the state dir.
 * `ocirt start` connects and sends the state JSON ended by a NUL byte.
 * Then it loads the seccomp filter, runs the startContainer hooks (HOOKS_FD,
 * -1 for none: records written by the Python stage, see
 * ocirt/linux/hooks.py encode_for_stage2) with that JSON on their stdin and
 * execve()s PATH.  The connection is close-on-exec: a successful execve
 * shows up at `start` as EOF; a failure is written back as "errno\nwhat
 * failed" (CPython's subprocess errpipe), to which `start` adds the errno's
 * text.
 *
 * Built with musl when musl-gcc is there (setup.py): ~50 KiB instead of
 * glibc's ~700, which is what a created container costs in memory and what
 * `create` copies into the sealed memfd.
 *
 * SECCOMP (ocirt/linux/seccomp.py prepares it) is one of
 *   "-1"        no filter to load (none, or the Python stage loaded it: with
 *               no_new_privs off, loading needs CAP_SYS_ADMIN, which the
 *               process may not keep; its listener went to the agent then);
 *   "FD,FLAGS"  FD is a memfd holding a struct sock_filter array (host byte
 *               order); it is loaded with seccomp(SECCOMP_SET_MODE_FILTER,
 *               FLAGS), or prctl(PR_SET_SECCOMP) when FLAGS is 0.  No
 *               libseccomp here: the program is compiled by the runtime.
 * When FLAGS has SECCOMP_FILTER_FLAG_NEW_LISTENER, the listener must reach
 * the agent (linux.seccomp.listenerPath) before we make a syscall the
 * profile notifies (read, close, execve...: it would wait for an agent that
 * has no fd).  So the only syscall between the load and the handover is one
 * write of "seccomp-listener FD\n" to `start` (write may not be notified:
 * ocirt/linux/seccomp.py refuses it, as runc does); `start` takes the fd
 * with pidfd_getfd(2), forwards it with the runtime-spec
 * ContainerProcessState, then writes LISTENER_TAKEN and shuts down its
 * side; until then we wait in read() (notified or not: the agent answers it
 * once it has the fd).  Whatever follows (an exec error) is as above.     */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void die_on_signal(int sig) { _exit(128 + sig); }

/* As pid 1 of a pid namespace we would ignore SIGTERM & co. with SIG_DFL;
 * a created container should still go away on `ocirt kill ID TERM`, as
 * runc's does.  execve() resets these handlers for the user process.    */
static void make_signals_fatal(void)
{
    static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = die_on_signal;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* "errno\nWHAT \"ARG\"" to `start`, which appends the errno's text: the
 * host's (glibc's) wording, whatever libc this program was built with. */
static void fail(int conn, int err, const char *what, const char *arg)
{
    char msg[4096];
    int len = arg ? snprintf(msg, sizeof(msg), "%d\n%s \"%s\"", err, what, arg)
                  : snprintf(msg, sizeof(msg), "%d\n%s", err, what);
    if (conn >= 0 && len > 0)
        write_all(conn, msg, (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg) - 1);
    _exit(127);
}

/* Read FD into a malloc'd buffer (NUL-terminated) up to EOF, or with
 * UNTIL_NUL up to the first NUL byte read (not kept: what `start` ends the
 * state with, the connection staying open); *len gets its size.            */
static char *slurp(int fd, size_t *len, int until_nul)
{
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL)
            return NULL;
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        char *nul = until_nul ? memchr(buf + used, '\0', (size_t)n) : NULL;
        used += (size_t)n;
        if (nul != NULL) {
            used = (size_t)(nul - buf);
            break;
        }
        if (used == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    buf[used] = '\0';
    *len = used;
    return buf;
}

/* Hook records: "path\0timeout\0argc\0arg...\0envc\0env...\0", repeated. */
static char *next_field(char **cursor, char *end)
{
    char *field = *cursor;
    if (field >= end)
        return NULL;
    *cursor = field + strlen(field) + 1;
    return field;
}

/* Every fd from 3 up closed: a hook gets the state on stdin and nothing else
 * of ours (the preserved fds are the container program's, not the hook's). */
static void close_fds_from_3(void)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
        return;
#endif
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
}

/* 0 when the hook exited 0; else -1 with errno, and WHY set to what happened
 * as Go's exec says it ("exit status 2", "signal: bad system call") or "". */
static int run_hook(char *path, int timeout, char **argv, char **envp, const char *state,
                    size_t state_len, char *why, size_t why_len)
{
    why[0] = '\0';
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pipefd[0], 0);
        close_fds_from_3();
        signal(SIGPIPE, SIG_DFL);
        execve(path, argv, envp);
        _exit(127);
    }
    close(pipefd[0]);
    write_all(pipefd[1], state, state_len); /* SIGPIPE is ignored (main) */
    close(pipefd[1]);
    int status = 0;
    long waited_ms = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, timeout > 0 ? WNOHANG : 0);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            return -1;
        if (timeout > 0 && waited_ms >= (long)timeout * 1000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            errno = ETIMEDOUT;
            return -1;
        }
        struct timespec ten_ms = {0, 10 * 1000 * 1000};
        nanosleep(&ten_ms, NULL);
        waited_ms += 10;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status)) {
        snprintf(why, why_len, "exit status %d", WEXITSTATUS(status));
    } else {
        const char *name = strsignal(WTERMSIG(status));
        snprintf(why, why_len, "signal: %s", name ? name : "killed");
        why[8] = (char)tolower((unsigned char)why[8]); /* Go's words: "bad system call" */
    }
    errno = 0; /* `start` then adds no errno text (ocirt.container.stage2_failure) */
    return -1;
}

static void run_start_container_hooks(int conn, int hooks_fd, const char *state, size_t state_len)
{
    size_t len = 0;
    char *records = slurp(hooks_fd, &len, 0);
    close(hooks_fd);
    if (records == NULL)
        fail(conn, ENOMEM, "startContainer hooks:", "read");
    char *cursor = records, *end = records + len;
    char *path;
    while ((path = next_field(&cursor, end)) != NULL) {
        int timeout = atoi(next_field(&cursor, end));
        int argc = atoi(next_field(&cursor, end));
        char **argv = calloc((size_t)argc + 1, sizeof(char *));
        for (int i = 0; i < argc; i++)
            argv[i] = next_field(&cursor, end);
        int envc = atoi(next_field(&cursor, end));
        char **envp = calloc((size_t)envc + 1, sizeof(char *));
        for (int i = 0; i < envc; i++)
            envp[i] = next_field(&cursor, end);
        char why[64];
        if (run_hook(path, timeout, argv, envp, state, state_len, why, sizeof(why)) < 0) {
            if (why[0] == '\0')
                fail(conn, errno, "error running startContainer hook", path);
            char what[4096];
            snprintf(what, sizeof(what), "error running startContainer hook %s: %s", path, why);
            fail(conn, 0, what, NULL);
        }
        free(argv);
        free(envp);
    }
    free(records);
}

#define LISTENER_MSG "seccomp-listener " /* then the fd's number and "\n" */
#define LISTENER_TAKEN 'T'                /* start: the agent has it, go on */

/* Reads the program from FD and loads it; returns the notify listener fd
 * (FLAGS has SECCOMP_FILTER_FLAG_NEW_LISTENER), 0 without one, -1 on error. */
static int load_seccomp(int fd, unsigned long flags)
{
    static struct sock_filter insns[BPF_MAXINSNS];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, (char *)insns + got, sizeof(insns) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    struct sock_fprog prog = {(unsigned short)(got / sizeof(insns[0])), insns};
    if (flags == 0)
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    return rc < 0 ? -1 : (int)rc;
}

/* The listener goes to the seccomp agent by way of `start` (see the top):
 * we write its number, `start` takes it with pidfd_getfd(2) and answers once
 * the agent has it; only then may it be closed (before execve, which would
 * close it anyway: a listener is close-on-exec).                          */
static void hand_over_listener(int conn, int listener)
{
    char msg[64];
    int len = snprintf(msg, sizeof(msg), LISTENER_MSG "%d\n", listener);
    write_all(conn, msg, (size_t)len);
    char answer = 0;
    ssize_t n;
    do
        n = read(conn, &answer, 1);
    while (n < 0 && errno == EINTR);
    /* EOF: `start` failed (it says why); an error: the agent refused our read */
    if (n != 1 || answer != LISTENER_TAKEN)
        fail(conn, n < 0 ? errno : 0, "unable to start container process: seccomp:"
             " wait for the listener fd to reach the agent", NULL);
    close(listener); /* the agent answers if close is notified: it has the fd */
}

/* SECCOMP as described at the top; returns only when the filter is in. */
static void apply_seccomp(int conn, const char *arg)
{
    int fd = atoi(arg);
    if (fd < 0)
        return;
    const char *comma = strchr(arg, ',');
    unsigned long flags = comma ? strtoul(comma + 1, NULL, 10) : 0;
    int listener = load_seccomp(fd, flags);
    if (listener < 0)
        fail(conn, errno, "unable to start container process: seccomp", "load filter");
    if (listener > 0)
        hand_over_listener(conn, listener);
}

/* ---- exec: the process `ocirt exec` starts (ocirt/process/exec_stage2.py) ----
 *
 *   argv: ocirt-init exec CHANNEL STDIN STDOUT STDERR [TASKS_FD DIR]...
 *
 * `ocirt exec` spawns us (vfork and execve: no forked interpreter) in the
 * container's pid namespace and cgroup v2 directory (CLONE_INTO_CGROUP),
 * from a sealed execute-only memfd, with every signal blocked and the fds
 * named here inherited: CHANNEL its SOCK_SEQPACKET end (ocirt.process.channel),
 * the fds to become 0, 1, 2 (-1: ours), and the cgroup v1 tasks files to
 * write "0" to, each with its directory (for the error).  Then we wait for PROCEED, whose body is
 * the plan (exec_stage2.encode_plan: NUL-ended fields), and do what the
 * Python child did (ocirt.process.exec._child, _setup), in its order and with
 * its checks.  A failure goes back as ERROR {errno, message}; in MESSAGE,
 * \u0001 stands for the errno's text and \u0002 for it with a lowercase
 * first letter (\u0003: all lowercase), which `exec` fills in with the
 * host's (glibc's) wording: this program may be built with musl.           */

#define MSG_PROCEED 3
#define MSG_ERROR 7
#define ERRNO_TEXT "\\u0001"
#define ERRNO_TEXT_LOWER "\\u0002"
#define ERRNO_TEXT_ALL_LOWER "\\u0003"
#define NGROUPS_MAX_LOCAL 65536

static int exec_channel = -1;

/* S as the inside of a JSON string. */
static size_t json_quote(char *out, size_t room, const char *s)
{
    size_t used = 0;
    for (; *s && used + 7 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[used++] = '\\';
            out[used++] = (char)c;
        } else if (c < 0x20) {
            used += (size_t)snprintf(out + used, room - used, "\\u%04x", c);
        } else {
            out[used++] = (char)c;
        }
    }
    out[used] = '\0';
    return used;
}

/* ERROR {errno: ERR, message: BEFORE ARG AFTER}, ARG quoted; then exit.
 * BEFORE and AFTER are JSON already (they may hold the errno markers).    */
static void exec_fail3(int err, const char *before, const char *arg, const char *after)
{
    static char msg[16384];
    char quoted[8192];
    json_quote(quoted, sizeof(quoted), arg ? arg : "");
    int len = snprintf(msg, sizeof(msg), "%c{\"errno\": %d, \"message\": \"%s%s%s\"}",
                       MSG_ERROR, err, before, quoted, after ? after : "");
    if (len > 0)
        send(exec_channel, msg, (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg) - 1,
             MSG_NOSIGNAL);
    _exit(1);
}

static void exec_fail(int err, const char *message) { exec_fail3(err, message, NULL, NULL); }

static char *plan_cursor, *plan_end;

/* The plan's next field ("" past the end: a short plan fails its checks). */
static char *plan_field(void)
{
    if (plan_cursor >= plan_end)
        return "";
    char *field = plan_cursor;
    plan_cursor += strlen(field) + 1;
    return field;
}

static long long plan_number(void) { return strtoll(plan_field(), NULL, 10); }

/* "0" to each tasks file: "0" names the writing thread, i.e. all of us. */
static void join_cgroups(char **tasks)
{
    for (; tasks[0] != NULL && tasks[1] != NULL; tasks += 2) {
        int fd = atoi(tasks[0]);
        if (write(fd, "0", 1) != 1)
            exec_fail3(errno, "unable to start container process: error adding pid to cgroups:"
                       " failed to write 0 to ", tasks[1], "/tasks: " ERRNO_TEXT_LOWER);
        close(fd);
    }
}

/* COUNT, then NAME RESOURCE SOFT HARD each (exec_stage2: the name for the error). */
static void apply_rlimits(void)
{
    int count = (int)plan_number();
    for (int i = 0; i < count; i++) {
        char *name = plan_field();
        int resource = (int)plan_number();
        struct rlimit rl = {strtoull(plan_field(), NULL, 10), strtoull(plan_field(), NULL, 10)};
        if (setrlimit(resource, &rl) < 0) {
            char what[512];
            snprintf(what, sizeof(what), "error setting rlimit type %s to soft=%llu hard=%llu: ",
                     name, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
            exec_fail3(errno, "", what, ERRNO_TEXT_LOWER);
        }
    }
}

/* Host privileges still: lowering it needs CAP_SYS_RESOURCE.  The file is
 * checked to be procfs's (a mount over it must not take the value elsewhere). */
static void set_oom_score_adj(const char *value)
{
    if (!*value)
        return;
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    struct statfs fs;
    if (fd >= 0 && (fstatfs(fd, &fs) < 0 || fs.f_type != 0x9fa0 /* PROC_SUPER_MAGIC */)) {
        close(fd);
        fd = -1;
        errno = EXDEV;
    }
    if (fd < 0 || write(fd, value, strlen(value)) < 0)
        exec_fail(errno, "failed to update /proc/self/oom_score_adj: " ERRNO_TEXT);
    close(fd);
}

/* "TYPE FD" pairs in join order: user first (its rights), mount last (it
 * moves our root and cwd to the container's).                              */
static void join_namespaces(void)
{
    int count = (int)plan_number();
    for (int i = 0; i < count; i++) {
        char *type = plan_field();
        int fd = (int)plan_number();
        if (setns(fd, 0) < 0)
            exec_fail3(errno, "failed to join ", type, " namespace: " ERRNO_TEXT);
        close(fd);
    }
}

/* Only 0-2 reach the process, and of ours only the channel stays open until
 * execve: closed, not merely close-on-exec, before the cwd is entered (a host
 * directory fd would be reachable as /proc/self/fd/N: CVE-2024-21626).      */
static void close_our_fds(void)
{
    if (exec_channel > 3 && syscall(SYS_close_range, 3U, (unsigned)exec_channel - 1, 0U) < 0)
        exec_fail(errno, "close_range: " ERRNO_TEXT);
    if (syscall(SYS_close_range, (unsigned)exec_channel + 1, ~0U, 0U) < 0)
        exec_fail(errno, "close_range: " ERRNO_TEXT);
}

/* HOME of UID in the container's /etc/passwd, else "/" (runc's default).
 * read(2), not stdio: what a created container costs is this program's size. */
static char *home_of(long long uid)
{
    static char home[4096 + 6]; /* not initialized: no 4 KiB in the file */
    snprintf(home, sizeof(home), "HOME=/");
    size_t len = 0;
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    char *text = fd >= 0 ? slurp(fd, &len, 0) : NULL;
    if (fd >= 0)
        close(fd);
    if (text == NULL)
        return home;
    char wanted[32];
    snprintf(wanted, sizeof(wanted), "%lld", uid);
    for (char *line = text, *next; line < text + len; line = next) {
        next = line + strcspn(line, "\n");
        if (*next)
            *next++ = '\0';
        char *fields[7] = {0};
        int n = 0;
        for (char *p = line; n < 7 && p != NULL; n++) {
            fields[n] = p;
            p = strchr(p, ':');
            if (p != NULL)
                *p++ = '\0';
        }
        if (n >= 6 && strcmp(fields[2], wanted) == 0) {
            snprintf(home, sizeof(home), "HOME=%s", *fields[5] ? fields[5] : "/");
            break;
        }
    }
    free(text);
    return home;
}

/* The cwd must lie under our root: getcwd fails with ENOENT for a path the
 * root cannot reach ("(unreachable)"), e.g. a /proc/self/fd/N to a host dir. */
static void check_cwd_inside_root(void)
{
    static char path[4096 + 1];
    if (syscall(SYS_getcwd, path, sizeof(path)) < 0) {
        if (errno != ENOENT)
            return; /* getcwd denied (a seccomp profile): the fds were closed before */
    } else if (path[0] == '/') {
        return;
    }
    exec_fail(0, "current working directory is outside of container mount namespace root"
                 " -- possible container breakout detected");
}

static int is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

/* Go's exec.LookPath inside the container, with runc's wording on errors. */
static const char *look_path(const char *arg0, const char *path_env, char *buf, size_t room)
{
    if (strchr(arg0, '/')) {
        if (is_executable(arg0))
            return arg0;
        struct stat st;
        if (stat(arg0, &st) < 0) {
            char before[8192 + 32];
            char quoted[8192];
            json_quote(quoted, sizeof(quoted), arg0);
            snprintf(before, sizeof(before), "exec: \\\"%s\\\": stat ", quoted);
            exec_fail3(errno, before, arg0, ": " ERRNO_TEXT_LOWER);
        }
        exec_fail3(EACCES, "exec: \\\"", arg0, "\\\": permission denied");
    }
    for (const char *dir = path_env; path_env && *path_env;) {
        const char *colon = strchrnul(dir, ':');
        int len = (int)(colon - dir);
        if (len == 0)
            snprintf(buf, room, "./%s", arg0);
        else if (dir[len - 1] == '/')
            snprintf(buf, room, "%.*s%s", len, dir, arg0);
        else
            snprintf(buf, room, "%.*s/%s", len, dir, arg0);
        if (is_executable(buf))
            return buf;
        if (!*colon)
            break;
        dir = colon + 1;
    }
    exec_fail3(ENOENT, "exec: \\\"", arg0, "\\\": executable file not found in $PATH");
    return NULL;
}

struct exec_caps {
    int set; /* 0: capabilities untouched (absent in the process) */
    unsigned long long bounding, effective, permitted, inheritable;
    char *ambient; /* "N,N" */
};

static void drop_bounding(const struct exec_caps *caps, int last_cap)
{
    for (int number = 0; number <= last_cap; number++) {
        if (caps->bounding & (1ULL << number))
            continue;
        if (prctl(PR_CAPBSET_DROP, number, 0, 0, 0) < 0 && errno != EINVAL) {
            char what[64];
            snprintf(what, sizeof(what), "prctl(%d, %d): ", PR_CAPBSET_DROP, number);
            exec_fail3(errno, "", what, ERRNO_TEXT);
        }
    }
}

static void apply_cap_sets(const struct exec_caps *caps)
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    unsigned long long sets[3] = {caps->effective, caps->permitted, caps->inheritable};
    for (int i = 0; i < 2; i++) {
        data[i].effective = (unsigned)(sets[0] >> (32 * i));
        data[i].permitted = (unsigned)(sets[1] >> (32 * i));
        data[i].inheritable = (unsigned)(sets[2] >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) < 0)
        exec_fail(errno, "capset: " ERRNO_TEXT);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        exec_fail(errno, "prctl(47, 4): " ERRNO_TEXT);
    for (char *p = caps->ambient; *p;) {
        int number = (int)strtol(p, &p, 10);
        /* runc ignores ambient caps that are not also permitted+inheritable */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number, 0, 0) < 0 && errno != EPERM)
            exec_fail(errno, "prctl(47, 2): " ERRNO_TEXT);
        if (*p == ',')
            p++;
    }
}

/* Groups first, uid last (it needs CAP_SETUID); errors as the posix module's. */
static void switch_user(long long uid, long long gid, char *groups)
{
    static gid_t list[NGROUPS_MAX_LOCAL];
    int count = 0;
    for (char *p = groups; *p && count < NGROUPS_MAX_LOCAL;) {
        list[count++] = (gid_t)strtoul(p, &p, 10);
        if (*p == ',')
            p++;
    }
    if (setgroups((size_t)count, list) < 0 || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0 ||
        setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
        exec_fail(errno, ERRNO_TEXT);
}

/* Ignored signals survive execve (the runtime ignores SIGPIPE, SIGXFSZ): all
 * to SIG_DFL, as runc's process starts; then an empty mask (exec blocks the
 * signals it forwards).  Raw syscalls: libc refuses its own reserved ones.  */
static void reset_signals(void)
{
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long long mask;
    } dfl = {SIG_DFL, 0, NULL, 0};
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
    unsigned long long none = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
}

/* The plan's seccomp program: "FD,FLAGS" (a memfd, read before our fds are
 * closed) or "-1".  Loaded later by load_exec_seccomp.                      */
static struct sock_filter exec_program[BPF_MAXINSNS];
static struct sock_fprog exec_filter = {0, exec_program};
static unsigned long exec_seccomp_flags;

static void read_exec_seccomp(const char *arg)
{
    int fd = atoi(arg);
    if (fd < 0)
        return;
    const char *comma = strchr(arg, ',');
    exec_seccomp_flags = comma ? strtoul(comma + 1, NULL, 10) : 0;
    size_t got = 0;
    for (;;) {
        ssize_t n = pread(fd, (char *)exec_program + got, sizeof(exec_program) - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            exec_fail(errno, "seccomp program: " ERRNO_TEXT);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    exec_filter.len = (unsigned short)(got / sizeof(exec_program[0]));
}

static void load_exec_seccomp(void)
{
    if (exec_filter.len == 0)
        return;
    long rc = exec_seccomp_flags == 0
                  ? prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &exec_filter, 0, 0)
                  : syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, exec_seccomp_flags, &exec_filter);
    if (rc < 0)
        exec_fail(errno, "unable to init seccomp: error loading seccomp filter into kernel: "
                  ERRNO_TEXT_ALL_LOWER);
    exec_filter.len = 0;
}

static int exec_main(char **argv)
{
    /* Not dumpable (CVE-2016-9962), and dead with `ocirt exec` until execve. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    exec_channel = atoi(argv[2]);
    /* Inherited: close-on-exec again, for its EOF to tell `exec` that execve worked. */
    fcntl(exec_channel, F_SETFD, FD_CLOEXEC);
    for (int target = 0; target < 3; target++) {
        int fd = atoi(argv[3 + target]);
        if (fd >= 0 && dup2(fd, target) < 0)
            exec_fail(errno, "dup2: " ERRNO_TEXT);
    }
    join_cgroups(argv + 6);

    static char plan[65536];
    ssize_t got;
    do
        got = recv(exec_channel, plan, sizeof(plan) - 1, 0);
    while (got < 0 && errno == EINTR);
    if (got < 1 || plan[0] != MSG_PROCEED)
        _exit(1); /* `exec` is gone (EOF) or failed: it says why */
    plan[got] = '\0';
    plan_cursor = plan + 1;
    plan_end = plan + got;

    read_exec_seccomp(plan_field());
    int seccomp_early = (int)plan_number();
    apply_rlimits();
    set_oom_score_adj(plan_field());
    join_namespaces();
    close_our_fds();
    long long uid = plan_number(), gid = plan_number();
    char *groups = plan_field();
    mode_t mask = (mode_t)plan_number();
    char *cwd = plan_field();
    int need_home = (int)plan_number();
    int envc = (int)plan_number();
    char **env = calloc((size_t)envc + 2, sizeof(char *));
    const char *path_env = "";
    for (int i = 0; env && i < envc; i++) {
        env[i] = plan_field();
        if (strncmp(env[i], "PATH=", 5) == 0)
            path_env = env[i] + 5;
    }
    struct exec_caps caps = {0};
    caps.set = (int)plan_number();
    caps.bounding = strtoull(plan_field(), NULL, 16);
    caps.effective = strtoull(plan_field(), NULL, 16);
    caps.permitted = strtoull(plan_field(), NULL, 16);
    caps.inheritable = strtoull(plan_field(), NULL, 16);
    caps.ambient = plan_field();
    int last_cap = (int)plan_number();
    int no_new_privs = (int)plan_number();
    int argc = (int)plan_number();
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; args && i < argc; i++)
        args[i] = plan_field();
    if (args == NULL || env == NULL || argc < 1)
        exec_fail(ENOMEM, "plan: " ERRNO_TEXT);
    if (need_home)
        env[envc] = home_of(uid);

    if (caps.set) {
        drop_bounding(&caps, last_cap);
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            exec_fail(errno, "prctl(8, 1): " ERRNO_TEXT);
    }
    /* Before the user switch: a cwd only root may enter still works. */
    int entered = chdir(cwd) == 0;
    if (entered)
        check_cwd_inside_root();
    if (seccomp_early)
        load_exec_seccomp(); /* needs CAP_SYS_ADMIN without nnp */
    switch_user(uid, gid, groups);
    umask(mask);
    if (!entered) {
        if (chdir(cwd) < 0)
            exec_fail3(errno, "chdir to cwd (\\\"", cwd,
                       "\\\") set in config.json failed: " ERRNO_TEXT_LOWER);
        check_cwd_inside_root();
    }
    char found[8192];
    const char *path = look_path(args[0], path_env, found, sizeof(found));
    if (caps.set) {
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
            exec_fail(errno, "prctl(8, 0): " ERRNO_TEXT);
        apply_cap_sets(&caps);
    }
    if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        exec_fail(errno, "prctl(38, 1): " ERRNO_TEXT);
    reset_signals();
    prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
    load_exec_seccomp(); /* if not loaded early: as late as possible, the program's profile */
    execve(path, args, env);
    exec_fail3(errno, "exec: \\\"", args[0], "\\\": " ERRNO_TEXT_LOWER);
    return 127;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "exec") == 0)
        return exec_main(argv);
    if (argc < 6)
        return 125;
    int listen_fd = atoi(argv[1]);
    const char *seccomp = argv[2];
    int hooks_fd = atoi(argv[3]);
    const char *path = argv[4];

    /* First: the execve that started us made us dumpable again, and we run
     * with the container's uid and capabilities, in its pid namespace: a
     * process of a container sharing it (a pod) could ptrace us, skip the
     * seccomp filter, or take our fds through /proc/PID/fd (CVE-2016-9962).
     * The user's program is dumpable again after its own execve.  What is
     * left is the few instructions from our entry to here; the parent makes
     * the memfd we run from unreadable to us (execute-only), which keeps the
     * kernel from making us dumpable in the first place unless the process
     * may read any file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).          */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (getpid() == 1)
        make_signals_fatal();
    fcntl(listen_fd, F_SETFD, FD_CLOEXEC);

    int conn;
    do
        conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    while (conn < 0 && errno == EINTR);
    if (conn < 0)
        fail(-1, errno, "accept", "start socket");
    close(listen_fd);
    size_t state_len = 0;
    char *state = slurp(conn, &state_len, 1); /* the state JSON, for the hooks */
    /* The filter first, then the startContainer hooks, as runc: they run
     * under the container's seccomp profile (a hook calling a syscall it
     * kills fails `start`).  Without hooks, only write, read and close (with
     * a listener) and execve run after it, so a profile needs little beyond
     * what its program uses. */
    if (hooks_fd >= 0)
        signal(SIGPIPE, SIG_IGN); /* a hook that does not read its stdin is fine */
    apply_seccomp(conn, seccomp);
    if (hooks_fd >= 0) {
        run_start_container_hooks(conn, hooks_fd, state ? state : "", state ? state_len : 0);
        signal(SIGPIPE, SIG_DFL); /* an ignored signal would outlive execve */
    }
    free(state);
    execve(path, argv + 5, environ);
    fail(conn, errno, "unable to start container process: exec:", argv[5]);
    return 127;
}
