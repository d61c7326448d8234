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
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

int main(int argc, char **argv)
{
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
