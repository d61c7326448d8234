/* ocirt-init, stage 2 of the container's init.
 *
 * The Python init (ocirt/process/init.py) sets the whole container up, then
 * executes this small static program from a sealed memfd.  It is what a
 * created-but-not-started container is: a process of a few hundred KiB
 * instead of a forked CPython, and whose /proc/self/exe is a sealed copy,
 * never a host file a container process could write through.
 *
 *   argv: ocirt-init LISTEN_FD SECCOMP_FD PATH ARG0 [ARG...]
 *   envp: the container process's environment
 *
 * It blocks in accept() on LISTEN_FD, a unix socket bound in the state dir.
 * `ocirt start` connects, sends the state JSON and closes its write side.
 * Then it loads the seccomp filter (a struct sock_filter array read from
 * SECCOMP_FD, -1 for none) and execve()s PATH.  The connection is
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

static void drain(int conn)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(conn, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
    }
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
    if (argc < 5)
        return 125;
    int listen_fd = atoi(argv[1]);
    int seccomp_fd = atoi(argv[2]);
    const char *path = argv[3];

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
    drain(conn); /* the state JSON; startContainer hooks will read it */

    if (seccomp_fd >= 0 && load_seccomp(seccomp_fd) < 0)
        fail(conn, errno, "unable to start container process: seccomp", "load filter");
    execve(path, argv + 4, environ);
    fail(conn, errno, "unable to start container process: exec:", argv[4]);
    return 127;
}
