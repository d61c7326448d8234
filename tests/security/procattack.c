/* procattack: what a hostile container process tries against the runtime's
 * processes it can see (CVE-2016-9962, CVE-2019-5736).  Built statically
 * into a test bundle by tests/security/procattack.py.  It never writes to
 * anything it reaches: a file opened for writing is closed at once.
 *
 *   procattack watch STOPFILE OUTFILE
 *       until STOPFILE exists: every process of our pid namespace but
 *       ourselves is probed, again whenever its /proc/PID/exe link changes;
 *       one line per finding is appended to OUTFILE.  Then, for each exe
 *       that was opened (O_PATH) while its process ran, it tries to reopen
 *       it for writing through /proc/self/fd (the CVE-2019-5736 move, made
 *       once the process is gone and the file no longer busy), and writes
 *       "done".
 *   procattack noop             exits 0 (a program for the runtime to exec)
 *
 * Lines (fields separated by one space):
 *   seen PID EXE                 readlink of /proc/PID/exe (or -ERRNO)
 *   exe PID DEV:INO|-ERRNO       open(/proc/PID/exe, O_PATH) and fstat
 *   exe-write PID ok|-ERRNO      open(/proc/PID/exe, O_WRONLY)
 *   mem PID ok|-ERRNO            open(/proc/PID/mem, O_RDWR): ptrace access
 *   ptrace PID ok|-ERRNO         PTRACE_SEIZE (then interrupt and detach)
 *   fds PID ok|-ERRNO            opendir(/proc/PID/fd)
 *   fd PID N TARGET ok|-ERRNO    an fd's link and open(O_RDONLY|O_NONBLOCK)
 *   reopen PID DEV:INO ok|-ERRNO the deferred open for writing
 *   done                                                                  */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TRACKED 256

struct tracked {
    int pid;
    char exe[256];
    int exe_fd; /* O_PATH fd of its exe, -1 if it could not be opened */
    char exe_id[64];
};

static struct tracked tracked[MAX_TRACKED];
static int n_tracked;
static FILE *out;

static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

static const char *result(int rc)
{
    static char buf[32];
    if (rc >= 0)
        return "ok";
    snprintf(buf, sizeof(buf), "-%d", errno);
    return buf;
}

static void exe_link(int pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    ssize_t n = readlink(path, buf, len - 1);
    if (n < 0)
        snprintf(buf, len, "-%d", errno);
    else
        buf[n] = '\0';
}

static void probe_ptrace(int pid)
{
    long rc = ptrace(PTRACE_SEIZE, pid, NULL, NULL);
    emit("ptrace %d %s", pid, result((int)rc));
    if (rc < 0)
        return;
    /* Let it go again at once: stop it, wait for the stop, detach. */
    if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) == 0)
        waitpid(pid, NULL, __WALL);
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
}

static void probe_fds(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    DIR *dir = opendir(path);
    emit("fds %d %s", pid, result(dir ? 0 : -1));
    if (dir == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char link[320], target[512];
        snprintf(link, sizeof(link), "%s/%s", path, entry->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
            snprintf(target, sizeof(target), "-%d", errno);
        else
            target[n] = '\0';
        for (char *c = target; *c; c++)
            if (*c == ' ')
                *c = '_';
        int fd = open(link, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        emit("fd %d %s %s %s", pid, entry->d_name, target, result(fd));
        if (fd >= 0)
            close(fd);
    }
    closedir(dir);
}

static void probe(struct tracked *t)
{
    int pid = t->pid;
    char path[64];
    emit("seen %d %s", pid, t->exe);
    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        fstat(fd, &st);
        snprintf(t->exe_id, sizeof(t->exe_id), "%lu:%lu", (unsigned long)st.st_dev,
                 (unsigned long)st.st_ino);
        emit("exe %d %s", pid, t->exe_id);
        t->exe_fd = fd;
    } else {
        emit("exe %d -%d", pid, errno);
    }
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    emit("exe-write %d %s", pid, result(wfd));
    if (wfd >= 0)
        close(wfd); /* never written to */
    snprintf(path, sizeof(path), "/proc/%d/mem", pid);
    int mfd = open(path, O_RDWR | O_CLOEXEC);
    emit("mem %d %s", pid, result(mfd));
    if (mfd >= 0)
        close(mfd);
    probe_fds(pid);
    probe_ptrace(pid);
}

/* The latest record of PID; a new one when its exe changed (each exe is
 * kept open: the stage it belonged to may have left a host file behind). */
static struct tracked *record_of(int pid, const char *exe)
{
    for (int i = n_tracked - 1; i >= 0; i--) {
        if (tracked[i].pid != pid)
            continue;
        if (strcmp(tracked[i].exe, exe) == 0)
            return NULL; /* probed already */
        break;
    }
    if (n_tracked == MAX_TRACKED)
        return NULL;
    struct tracked *t = &tracked[n_tracked++];
    memset(t, 0, sizeof(*t));
    t->pid = pid;
    t->exe_fd = -1;
    snprintf(t->exe, sizeof(t->exe), "%s", exe);
    return t;
}

static void scan(void)
{
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return;
    struct dirent *entry;
    int self = getpid();
    while ((entry = readdir(proc)) != NULL) {
        int pid = atoi(entry->d_name);
        if (pid <= 0 || pid == self)
            continue;
        char exe[256];
        exe_link(pid, exe, sizeof(exe));
        struct tracked *t = record_of(pid, exe);
        if (t != NULL)
            probe(t);
    }
    closedir(proc);
}

static void reopen_for_writing(void)
{
    for (int i = 0; i < n_tracked; i++) {
        struct tracked *t = &tracked[i];
        if (t->exe_fd < 0)
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", t->exe_fd);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        emit("reopen %d %s %s", t->pid, t->exe_id, result(fd));
        if (fd >= 0)
            close(fd); /* never written to */
    }
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "noop") == 0)
        return 0;
    if (argc != 4 || strcmp(argv[1], "watch") != 0) {
        fprintf(stderr, "usage: procattack watch STOPFILE OUTFILE | noop\n");
        return 2;
    }
    out = fopen(argv[3], "a");
    if (out == NULL)
        return 1;
    emit("start %d", getpid());
    while (access(argv[2], F_OK) != 0)
        scan();
    /* Give the runtime's processes time to be gone (a busy exe is ETXTBSY). */
    struct timespec pause = {1, 0};
    nanosleep(&pause, NULL);
    reopen_for_writing();
    emit("done");
    fclose(out);
    return 0;
}
