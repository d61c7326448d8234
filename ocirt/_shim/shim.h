/* Declarations shared by the cffi cdef (build.py) and shim.c.
 * Every function returns -1 and leaves errno set on failure, like libc;
 * ocirt/linux/syscalls.py turns that into OSError(errno, "call: ...").   */
#include <stdint.h>

/* fork(2) with namespace flags (clone3 when a cgroup fd is given, so the
 * child starts life inside its cgroup: CLONE_INTO_CGROUP).  Runs CPython's
 * own before/after-fork handlers exactly as os.fork() does.               */
long ocirt_fork(uint64_t flags, int cgroup_fd);

/* vfork+execve of PATH (no Python in the child): clone3 with CLONE_VFORK,
 * CLONE_VM where this file knows how to give the child its own stack
 * (x86-64; elsewhere the page tables are copied), and CLONE_INTO_CGROUP
 * when CGROUP_FD >= 0.  Every signal is blocked across it: the child execs
 * with all of them blocked (stage 2, ocirt/process/exec_stage2.py, empties
 * the mask before its own execve).  Returns the pid once the child has
 * exec'd; -1 with errno (the clone's or the execve's; the child reaped).   */
long ocirt_spawn(const char *path, char *const argv[], char *const envp[], int cgroup_fd);

int ocirt_unshare(int flags);
int ocirt_setns(int fd, int nstype);
int ocirt_pivot_root(const char *new_root, const char *put_old);
int ocirt_mount(const char *source, const char *target, const char *fstype,
                unsigned long flags, const char *data);
int ocirt_umount2(const char *target, int flags);
int ocirt_sethostname(const char *name, size_t len);
int ocirt_setdomainname(const char *name, size_t len);
int ocirt_capget(uint32_t pid, uint32_t *effective, uint32_t *permitted, uint32_t *inheritable);
int ocirt_capset(const uint32_t *effective, const uint32_t *permitted, const uint32_t *inheritable);
int ocirt_prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);
int ocirt_personality(unsigned long persona);
int ocirt_openat2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve);
int ocirt_open_tree(int dirfd, const char *path, unsigned int flags);
int ocirt_move_mount(int from_dirfd, const char *from_path, int to_dirfd, const char *to_path, unsigned int flags);
int ocirt_mount_setattr(int dirfd, const char *path, unsigned int flags,
                        uint64_t attr_set, uint64_t attr_clr, uint64_t propagation, uint64_t userns_fd);
int ocirt_fsopen(const char *fsname, unsigned int flags);
int ocirt_fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux);
int ocirt_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
/* fstatfs(2)'s f_type of FD: the magic number of the filesystem it is on
 * (os.fstatvfs has no f_type).  -1 and errno on failure.                  */
long long ocirt_fstatfs_type(int fd);
int ocirt_close_range(unsigned int first, unsigned int last, unsigned int flags);
/* pidfd_getfd(2): our own copy (close-on-exec) of fd TARGET_FD of the
 * process PIDFD refers to; needs ptrace rights over it (Linux 5.6+).      */
int ocirt_pidfd_getfd(int pidfd, int target_fd, unsigned int flags);
/* pidfd_send_signal(2): SIG to the process PIDFD pins.  kill and delete signal
 * through it (a pid may be a new process's by the time a kill(2) lands);
 * CPython's `_signal.pidfd_send_signal` needs the launcher's main phase (~2 ms). */
int ocirt_pidfd_send_signal(int pidfd, int sig);
int ocirt_ioprio_set(int which, int who, int ioprio);
/* setrlimit(2) of RESOURCE, by number (the resource module is a shared
 * library of its own, ~0.2 ms to load).  UINT64_MAX is RLIM_INFINITY.     */
int ocirt_setrlimit(int resource, uint64_t soft, uint64_t hard);
/* Before execve: every ignored signal back to SIG_DFL (an ignored signal
 * survives execve: CPython and ocirt's launcher ignore SIGPIPE and SIGXFSZ,
 * callers may ignore others; runc's process starts with none) and nothing
 * blocked.  In C: the `_signal` module cannot be loaded while the launcher's
 * interpreter is only half started (ocirt/_shim/launcher.c), and it cannot
 * reach the signals libc keeps for itself.                                 */
int ocirt_reset_signals(void);
/* rt_sigprocmask(2) with the kernel's 64-bit mask (bit N-1 = signal N): HOW is
 * SIG_BLOCK, SIG_UNBLOCK or SIG_SETMASK; the previous mask goes to *OLD.  And
 * signalfd4(2) for MASK (close-on-exec, non-blocking).  exec forwards signals
 * with them in the launcher's core phase, where `_signal` cannot be loaded. */
int ocirt_sigprocmask(int how, uint64_t mask, uint64_t *old);
int ocirt_signalfd(uint64_t mask);
/* sched_setattr(2) with struct sched_attr spelled out (glibc has no wrapper). */
int ocirt_sched_setattr(int pid, uint32_t policy, uint64_t flags, int32_t nice,
                        uint32_t priority, uint64_t runtime, uint64_t deadline, uint64_t period);
/* set_mempolicy(2): NODEMASK is MAXNODE bits in unsigned longs (no libnuma). */
long ocirt_set_mempolicy(int mode, const unsigned long *nodemask, unsigned long maxnode);
