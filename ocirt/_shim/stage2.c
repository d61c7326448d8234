/* ocirt-init, stage 2 of the container's init.
 *
 * The Python init (ocirt/process/init.py) sets the whole container up, then
 * executes this small static program from a sealed memfd.  It is what a
 * created-but-not-started container is: a process of a few hundred KiB
 * instead of a forked CPython, and whose /proc/self/exe is a sealed copy,
 * never a host file a container process could write through.
 *
 *   argv: ocirt-init LISTEN_FD SECCOMP_FD HOOKS_FD PATH ARG0 [ARG...]
 *   envp: the container process's environment
 *
 * It blocks in accept() on LISTEN_FD, a unix socket bound in the state dir.
 * `ocirt start` connects, sends the state JSON and closes its write side.
 * Then it runs the startContainer hooks (HOOKS_FD, -1 for none: records
 * written by the Python stage, see ocirt/linux/hooks.py encode_for_stage2)
 * with that JSON on their stdin, loads the seccomp filter (a struct
 * sock_filter array read from SECCOMP_FD, -1 for none) and execve()s PATH.  The connection is
 * close-on-exec: a successful execve shows up at `start` as EOF; a failure
 * is written back as "errno\nsentence" (CPython's subprocess errpipe). */
#define _GNU_SOURCE
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

static void fail(int conn, int err, const char *what, const char *arg)
{
    char msg[4096];
    char reason[256];
    snprintf(reason, sizeof(reason), "%s", strerror(err));
    if (reason[0] >= 'A' && reason[0] <= 'Z')
        reason[0] = (char)(reason[0] - 'A' + 'a'); /* Go's (and runc's) spelling */
    int len = snprintf(msg, sizeof(msg), "%d\n%s \"%s\": %s", err, what, arg, reason);
    if (conn >= 0 && len > 0)
        write_all(conn, msg, (size_t)len < sizeof(msg) ? (size_t)len : sizeof(msg) - 1);
    _exit(127);
}

/* Read all of FD into a malloc'd buffer (NUL-terminated); *len gets its size. */
static char *slurp(int fd, size_t *len)
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
        used += (size_t)n;
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

static int run_hook(char *path, int timeout, char **argv, char **envp, const char *state,
                    size_t state_len)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pipefd[0], 0);
        signal(SIGPIPE, SIG_DFL);
        execve(path, argv, envp);
        _exit(127);
    }
    close(pipefd[0]);
    signal(SIGPIPE, SIG_IGN); /* a hook that does not read its stdin is fine */
    write_all(pipefd[1], state, state_len);
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
    errno = ECHILD;
    return -1;
}

static void run_start_container_hooks(int conn, int hooks_fd, const char *state, size_t state_len)
{
    size_t len = 0;
    char *records = slurp(hooks_fd, &len);
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
        if (run_hook(path, timeout, argv, envp, state, state_len) < 0)
            fail(conn, errno, "error running startContainer hook", path);
        free(argv);
        free(envp);
    }
    free(records);
}

static int load_seccomp(int fd)
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
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

int main(int argc, char **argv)
{
    if (argc < 6)
        return 125;
    int listen_fd = atoi(argv[1]);
    int seccomp_fd = atoi(argv[2]);
    int hooks_fd = atoi(argv[3]);
    const char *path = argv[4];

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
    char *state = slurp(conn, &state_len); /* the state JSON, for the hooks */
    if (hooks_fd >= 0)
        run_start_container_hooks(conn, hooks_fd, state ? state : "", state ? state_len : 0);
    free(state);

    if (seccomp_fd >= 0 && load_seccomp(seccomp_fd) < 0)
        fail(conn, errno, "unable to start container process: seccomp", "load filter");
    signal(SIGPIPE, SIG_DFL);
    execve(path, argv + 5, environ);
    fail(conn, errno, "unable to start container process: exec:", argv[5]);
    return 127;
}
