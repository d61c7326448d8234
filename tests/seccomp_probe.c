/* seccomp_probe: calls a fixed table of syscalls and prints one line each,
 * "name: 0" or "name: ERRNONAME", so the same profile can be compared under
 * ocirt and runc (tests/test_seccomp.py builds it statically into the
 * bundle).  Arguments select rows by name; none runs them all.  Children
 * (clone, fork) exit at once; nothing is left behind but a /tmp/probe-dir.
 * Several rows (mount, sethostname, kexec_load...) would change the host:
 * it refuses to run in the host's pid namespace.                         */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long reap(long rc)
{
    if (rc == 0)
        _exit(0); /* the child of a clone/fork row */
    if (rc > 0) {
        waitpid((pid_t)rc, NULL, __WALL);
        return 0;
    }
    return rc;
}

static long do_clone(unsigned long flags) { return reap(syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0)); }

static long do_clone3(void)
{
    unsigned long long args[11] = {0};
    args[4] = SIGCHLD; /* exit_signal */
    return reap(syscall(SYS_clone3, args, sizeof(args)));
}

struct row {
    const char *name;
    long (*call)(void);
};

static long r_getpid(void) { return syscall(SYS_getpid) > 0 ? 0 : -1; }
static long r_mkdir(void) { return syscall(SYS_mkdir, "/tmp/probe-dir", 0755) == 0 || errno == EEXIST ? 0 : -1; }
static long r_fork(void) { return do_clone(0); }
static long r_clone_newnet(void) { return do_clone(CLONE_NEWNET); }
static long r_clone_newuser(void) { return do_clone(CLONE_NEWUSER); }
static long r_clone3(void) { return do_clone3(); }
static long r_unshare_net(void) { return syscall(SYS_unshare, CLONE_NEWNET); }
static long r_personality_0(void) { return syscall(SYS_personality, 0) < 0 ? -1 : 0; }
static long r_personality_query(void) { return syscall(SYS_personality, 0xffffffffUL) < 0 ? -1 : 0; }
static long r_personality_bad(void) { return syscall(SYS_personality, 0x0040000UL) < 0 ? -1 : 0; }
static long r_mount(void) { return syscall(SYS_mount, "none", "/tmp/probe-dir", "tmpfs", 0, 0); }
static long r_reboot(void) { return syscall(SYS_reboot, 0, 0, 0, 0); }
static long r_keyctl(void) { return syscall(SYS_keyctl, 0, 0, 0, 0, 0); }
static long r_sethostname(void) { return syscall(SYS_sethostname, "probe", 5); }
static long r_setns(void) { return syscall(SYS_setns, -1, 0); }
static long r_kexec_load(void) { return syscall(SYS_kexec_load, 0, 0, 0, 0); }
static long r_vmsplice(void) { return syscall(SYS_vmsplice, -1, 0, 0, 0); }
static long r_nr_999(void) { return syscall(999); }
static long r_x32_getpid(void) { return syscall(39 | 0x40000000); }

/* Syscalls a runtime makes itself after loading a filter (the notify tests):
 * each row makes its one call of interest with syscall(2).                */
static long r_openat(void)
{
    long fd = syscall(SYS_openat, AT_FDCWD, "/", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        close((int)fd);
    return fd < 0 ? -1 : 0;
}
static long r_close(void)
{
    int fd = dup(1);
    return fd < 0 ? -1 : syscall(SYS_close, fd);
}
static long r_fchdir(void)
{
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long rc = syscall(SYS_fchdir, fd);
    close(fd);
    return rc;
}
static long r_sendmsg(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    long rc = syscall(SYS_sendmsg, sv[0], &msg, 0);
    close(sv[0]);
    close(sv[1]);
    return rc < 0 ? -1 : 0;
}
static long r_execve(void) /* ENOENT, unless a rule answers first */
{
    char *argv[] = {"/no-such-program", NULL};
    return syscall(SYS_execve, argv[0], argv, NULL);
}

static const struct row rows[] = {
    {"mkdir", r_mkdir}, /* first: mount needs the directory */
    {"getpid", r_getpid},
    {"fork", r_fork},
    {"clone_newnet", r_clone_newnet},
    {"clone_newuser", r_clone_newuser},
    {"clone3", r_clone3},
    {"unshare_net", r_unshare_net},
    {"personality_0", r_personality_0},
    {"personality_query", r_personality_query},
    {"personality_bad", r_personality_bad},
    {"mount", r_mount},
    {"reboot", r_reboot},
    {"keyctl", r_keyctl},
    {"sethostname", r_sethostname},
    {"setns", r_setns},
    {"kexec_load", r_kexec_load},
    {"vmsplice", r_vmsplice},
    {"nr_999", r_nr_999},
    {"x32_getpid", r_x32_getpid},
    {"openat", r_openat},
    {"close", r_close},
    {"fchdir", r_fchdir},
    {"sendmsg", r_sendmsg},
    {"execve", r_execve},
};

static void report(const char *name, long rc)
{
    if (rc < 0)
        printf("%s: %s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    else
        printf("%s: 0\n", name);
    fflush(stdout);
}

static void run(const struct row *r)
{
    errno = 0;
    report(r->name, r->call());
}

/* "close=N", "getpgid=N" and "dup2=N,M": the argument filter rows, numbers
 * from argv (fds that are not open: EBADF, pids that do not exist: ESRCH,
 * unless a rule answers first).                                          */
static int run_with_args(const char *arg)
{
    unsigned long a = 0, b = 0;
    errno = 0;
    if (sscanf(arg, "close=%lu", &a) == 1)
        report(arg, syscall(SYS_close, a));
    else if (sscanf(arg, "getpgid=%lu", &a) == 1)
        report(arg, syscall(SYS_getpgid, a));
    else if (sscanf(arg, "dup2=%lu,%lu", &a, &b) == 2)
        report(arg, syscall(SYS_dup2, a, b));
    else
        return 0;
    return 1;
}

int main(int argc, char **argv)
{
    /* PROC_PID_INIT_INO: the host's (initial) pid namespace. */
    char ns[64] = "";
    if (readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1) < 0 || strcmp(ns, "pid:[4026531836]") == 0) {
        fprintf(stderr, "seccomp_probe: refusing to run outside a container's pid namespace\n");
        return 2;
    }
    int with_args = 0;
    for (int a = 1; a < argc; a++)
        with_args |= run_with_args(argv[a]);
    if (with_args)
        return 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], rows[i].name) == 0;
        if (wanted)
            run(&rows[i]);
    }
    return 0;
}
