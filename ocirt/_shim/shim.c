/* The syscalls Python 3.11 does not expose.  Thin on purpose: policy lives in
 * Python (ocirt/linux/), this file only crosses into the kernel.           */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <Python.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/sched.h>

#include "shim.h"

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

struct ocirt_clone_args {  /* struct clone_args, spelled out for old headers */
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
        set_tid, set_tid_size, cgroup;
};

static long raw_fork(uint64_t flags, int cgroup_fd)
{
    if (cgroup_fd >= 0 || (flags >> 32) != 0) {
        struct ocirt_clone_args args;
        memset(&args, 0, sizeof(args));
        args.flags = flags;
        args.exit_signal = SIGCHLD;
        if (cgroup_fd >= 0) {
            args.flags |= 0x200000000ULL; /* CLONE_INTO_CGROUP */
            args.cgroup = (uint64_t)cgroup_fd;
        }
        return syscall(SYS_clone3, &args, sizeof(args));
    }
    /* x86-64 and arm64 raw clone: (flags, stack, parent_tid, child_tid, tls);
     * with a NULL stack the child continues on a copy of ours, like fork(). */
    return syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, 0);
}

long ocirt_fork(uint64_t flags, int cgroup_fd)
{
    /* cffi released the GIL around this call; CPython's fork hooks need it. */
    PyGILState_STATE gil = PyGILState_Ensure();
    PyOS_BeforeFork();
    long pid = raw_fork(flags, cgroup_fd);
    int saved = errno;
    if (pid == 0) {
        PyOS_AfterFork_Child();
    } else {
        PyOS_AfterFork_Parent();
    }
    PyGILState_Release(gil);
    errno = saved;
    return pid;
}

struct spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    int error; /* the child's execve errno, read by the parent (shared memory) */
};

/* The child: only raw syscalls, on its own stack, in memory it shares with
 * the parent (which is suspended until the execve or the exit).           */
static void __attribute__((noreturn, used)) spawn_child(struct spawn_request *req)
{
    long rc = syscall(SYS_execve, req->path, req->argv, req->envp);
    req->error = rc < 0 ? errno : EINVAL;
    for (;;)
        syscall(SYS_exit, 127);
}

/* STACK: memory of our (suspended) frame the child may use as its stack. */
static long spawn_clone(struct ocirt_clone_args *args, struct spawn_request *req, char *stack,
                        size_t stack_size)
{
#if defined(__x86_64__)
    /* CLONE_VM: the child starts on STACK with our registers, but rax (0)
     * and rsp; it calls spawn_child(req) from there and never returns.   */
    args->flags |= CLONE_VM;
    args->stack = (uint64_t)(uintptr_t)stack;
    args->stack_size = stack_size;
    register struct spawn_request *r12 __asm__("r12") = req;
    register void (*r13)(struct spawn_request *) __asm__("r13") = spawn_child;
    long ret;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov %%r12, %%rdi\n\t"
                     "call *%%r13\n\t"
                     "hlt\n"
                     "1:\n\t"
                     : "=a"(ret)
                     : "a"((long)SYS_clone3), "D"(args), "S"(sizeof(*args)), "r"(r12), "r"(r13)
                     : "rcx", "r11", "memory");
    if (ret < 0) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
#else
    (void)stack;
    (void)stack_size;
    long pid = syscall(SYS_clone3, args, sizeof(*args));
    if (pid == 0)
        spawn_child(req); /* a copy of our memory: its error reaches us as EINVAL */
    return pid;
#endif
}

long ocirt_spawn(const char *path, char *const argv[], char *const envp[], int cgroup_fd)
{
    struct spawn_request req = {path, argv, envp, 0};
    char stack[32768] __attribute__((aligned(16)));
    struct ocirt_clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_VFORK;
    args.exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args.flags |= 0x200000000ULL; /* CLONE_INTO_CGROUP */
        args.cgroup = (uint64_t)cgroup_fd;
    }
    /* No handler of ours may run in the child (it shares our memory). */
    uint64_t all = ~0ULL, old = 0;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof(all));
    long pid = spawn_clone(&args, &req, stack, sizeof(stack));
    int saved = errno;
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof(old));
    if (pid > 0 && req.error != 0) {
        int status;
        while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
            ;
        errno = req.error;
        return -1;
    }
    errno = saved;
    return pid;
}

int ocirt_unshare(int flags) { return unshare(flags); }
int ocirt_setns(int fd, int nstype) { return setns(fd, nstype); }
int ocirt_pivot_root(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}
int ocirt_mount(const char *source, const char *target, const char *fstype, unsigned long flags,
                const char *data)
{
    return mount(source, target, fstype, flags, data);
}
int ocirt_umount2(const char *target, int flags) { return umount2(target, flags); }
int ocirt_sethostname(const char *name, size_t len) { return sethostname(name, len); }
int ocirt_setdomainname(const char *name, size_t len) { return setdomainname(name, len); }

int ocirt_capget(uint32_t pid, uint32_t *effective, uint32_t *permitted, uint32_t *inheritable)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, (int)pid};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        effective[i] = data[i].effective;
        permitted[i] = data[i].permitted;
        inheritable[i] = data[i].inheritable;
    }
    return 0;
}

int ocirt_capset(const uint32_t *effective, const uint32_t *permitted, const uint32_t *inheritable)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    for (int i = 0; i < 2; i++) {
        data[i].effective = effective[i];
        data[i].permitted = permitted[i];
        data[i].inheritable = inheritable[i];
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

int ocirt_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)
{
    return prctl(option, a2, a3, a4, a5);
}

int ocirt_personality(unsigned long persona) { return personality(persona); }

int ocirt_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
    uint64_t how[3] = {flags, mode, resolve}; /* struct open_how */
    return (int)syscall(SYS_openat2, dirfd, path, how, sizeof(how));
}
int ocirt_open_tree(int dirfd, const char *path, unsigned int flags)
{
    return (int)syscall(SYS_open_tree, dirfd, path, flags);
}
int ocirt_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path,
                     unsigned int flags)
{
    return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd, to_path, flags);
}
int ocirt_mount_setattr(int dirfd, const char *path, unsigned int flags, uint64_t attr_set,
                        uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd)
{
    uint64_t attr[4] = {attr_set, attr_clr, propagation, userns_fd}; /* struct mount_attr */
    return (int)syscall(SYS_mount_setattr, dirfd, path, flags, attr, sizeof(attr));
}
int ocirt_fsopen(const char *fsname, unsigned int flags)
{
    return (int)syscall(SYS_fsopen, fsname, flags);
}
int ocirt_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux)
{
    return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
}
int ocirt_fsmount(int fd, unsigned int flags, unsigned int attr_flags)
{
    return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
}
long long ocirt_fstatfs_type(int fd)
{
    struct statfs buf;
    if (fstatfs(fd, &buf) < 0)
        return -1;
    return (long long)(unsigned long)buf.f_type;
}
int ocirt_setrlimit(int resource, uint64_t soft, uint64_t hard)
{
    struct rlimit limit = {.rlim_cur = (rlim_t)soft, .rlim_max = (rlim_t)hard};
    return setrlimit(resource, &limit);
}

/* The kernel's struct sigaction (x86-64, arm64...): libc's sigaction refuses
   the signals it keeps for itself (32, 33), which a caller may still have
   left ignored (GNU make does), so this talks to rt_sigaction directly. */
struct kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    uint64_t mask;
};

int ocirt_reset_signals(void)
{
    for (int sig = 1; sig <= 64; sig++) {
        struct kernel_sigaction old, dfl = {.handler = SIG_DFL};
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof(old.mask)) < 0)
            return -1;
        if (old.handler == SIG_IGN &&
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(dfl.mask)) < 0)
            return -1;
    }
    uint64_t none = 0;
    return (int)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(none));
}

int ocirt_sigprocmask(int how, uint64_t mask, uint64_t *old)
{
    return (int)syscall(SYS_rt_sigprocmask, how, &mask, old, sizeof(mask));
}

int ocirt_signalfd(uint64_t mask)
{
    return (int)syscall(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC | SFD_NONBLOCK);
}

#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
int ocirt_pidfd_getfd(int pidfd, int target_fd, unsigned int flags)
{
    return (int)syscall(SYS_pidfd_getfd, pidfd, target_fd, flags);
}

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
int ocirt_pidfd_send_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int ocirt_close_range(unsigned int first, unsigned int last, unsigned int flags)
{
    return (int)syscall(SYS_close_range, first, last, flags);
}
int ocirt_ioprio_set(int which, int who, int ioprio)
{
    return (int)syscall(SYS_ioprio_set, which, who, ioprio);
}

struct ocirt_sched_attr { /* struct sched_attr, SCHED_ATTR_SIZE_VER0 (48 bytes) */
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};

int ocirt_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice,
                        uint32_t priority, uint64_t runtime, uint64_t deadline, uint64_t period)
{
    struct ocirt_sched_attr attr = {sizeof(attr), policy,   flags,    nice,
                                    priority,     runtime, deadline, period};
    return (int)syscall(SYS_sched_setattr, pid, &attr, 0);
}

long ocirt_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode)
{
    return syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
}
