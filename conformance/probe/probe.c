/*
 * probe: prints ONE JSON object describing the process environment it sees
 * from inside a container (credentials, capabilities, limits, namespaces,
 * mounts, devices, fds, network interfaces, masked/readonly paths, ...).
 *
 * Built statically (gcc -static -O2) so it runs in any rootfs.  Every probe
 * degrades to JSON null instead of failing: a missing /proc, /sys or /dev is
 * itself a finding.  Lists are sorted so that output is comparable.
 *
 * usage: probe [--sleep N] [--exit N] [--masked PATH]... [--readonly PATH]...
 *   --sleep N      sleep N seconds after printing (for kill tests)
 *   --exit N       exit with status N after printing (and sleeping)
 *   --masked P     also report P under "masked" (besides runc's defaults)
 *   --readonly P   also report P under "readonly" (besides runc's defaults)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <unistd.h>

#define TMPFS_MAGIC_ 0x01021994
#define MAX_ITEMS 4096
#define MAX_EXTRA 64

/* ---------- minimal streaming JSON writer ---------- */

/* One flag per nesting level: does the next value need a leading comma? */
static int need_comma[64];
static int depth;

static void sep(void)
{
    if (need_comma[depth])
        putchar(',');
    need_comma[depth] = 1;
}

/* Length of the valid UTF-8 sequence at p, or 0 if it is not valid. */
static int utf8_len(const unsigned char *p)
{
    int n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (p[0] >= 0xf8)
        return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    /* Overlong forms, UTF-16 surrogates and > U+10FFFF are not valid UTF-8. */
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
        return 0;
    return n;
}

/* Valid UTF-8 passes through; any other byte >= 0x80 becomes \u00XX (read
 * as Latin-1) so the output is valid JSON whatever the input bytes are. */
static void put_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        default:
            if (*p >= 0x80) {
                int n = utf8_len(p);
                if (n > 0) {
                    fwrite(p, 1, n, stdout);
                    p += n - 1;
                    break;
                }
            }
            if (*p < 0x20 || *p >= 0x7f)
                printf("\\u%04x", *p);
            else
                putchar(*p);
        }
    }
    putchar('"');
}

static void key(const char *k)
{
    sep();
    put_string(k);
    putchar(':');
    /* The value that follows must not get a comma of its own. */
    need_comma[depth] = 0;
}

static void finish_value(void) { need_comma[depth] = 1; }

static void jstr(const char *s)
{
    sep();
    if (s)
        put_string(s);
    else
        fputs("null", stdout);
}

static void jnull(void) { sep(); fputs("null", stdout); }
static void jint(long long v) { sep(); printf("%lld", v); }
static void jbool(int v) { sep(); fputs(v ? "true" : "false", stdout); }

static void jopen(char c)
{
    sep();
    putchar(c);
    need_comma[++depth] = 0;
}

static void jclose(char c)
{
    putchar(c);
    depth--;
    finish_value();
}

/* key + value helpers */
static void kstr(const char *k, const char *v) { key(k); jstr(v); }
static void kint(const char *k, long long v) { key(k); jint(v); }
static void knull(const char *k) { key(k); jnull(); }
static void kobj(const char *k) { key(k); jopen('{'); }
static void karr(const char *k) { key(k); jopen('['); }

/* ---------- small helpers ---------- */

/* Reads a whole (small) file into a malloc'd NUL-terminated buffer. */
static char *read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return buf;
}

static void rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* Value of "Name:\tvalue" in a /proc status-like buffer, or NULL. */
static char *status_field(const char *status, const char *name)
{
    static char value[256];
    size_t nlen = strlen(name);
    for (const char *line = status; line && *line;) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t len = end ? (size_t)(end - v) : strlen(v);
            if (len >= sizeof(value))
                len = sizeof(value) - 1;
            memcpy(value, v, len);
            value[len] = '\0';
            return value;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_gid(const void *a, const void *b)
{
    gid_t x = *(const gid_t *)a, y = *(const gid_t *)b;
    return (x > y) - (x < y);
}

/* Emits a string array sorted, from a comma-separated list (consumed). */
static void sorted_csv(char *csv)
{
    char *items[256];
    int n = 0;
    for (char *tok = strtok(csv, ","); tok && n < 256; tok = strtok(NULL, ","))
        items[n++] = tok;
    qsort(items, n, sizeof(items[0]), cmp_str);
    /* A comma list (not an array) keeps mount rows short in reports. */
    size_t total = 1;
    for (int i = 0; i < n; i++)
        total += strlen(items[i]) + 1;
    char *out = calloc(1, total);
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, items[i]);
    }
    jstr(out);
    free(out);
}

/* Undoes mountinfo's octal escaping (\040 for space etc.) in place. */
static void unescape_octal(char *s)
{
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' &&
            r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* ---------- probes ---------- */

static void probe_ids(void)
{
    kint("uid", getuid());
    kint("gid", getgid());
    kint("euid", geteuid());
    kint("egid", getegid());

    key("groups");
    gid_t groups[NGROUPS_MAX];
    int n = getgroups(NGROUPS_MAX, groups);
    if (n < 0) {
        jnull();
        return;
    }
    qsort(groups, n, sizeof(groups[0]), cmp_gid);
    jopen('[');
    for (int i = 0; i < n; i++)
        jint(groups[i]);
    jclose(']');
}

static void probe_status(const char *status)
{
    static const char *const caps[][2] = {
        {"effective", "CapEff"},     {"permitted", "CapPrm"},
        {"inheritable", "CapInh"},   {"bounding", "CapBnd"},
        {"ambient", "CapAmb"},
    };
    if (!status) {
        knull("caps");
    } else {
        kobj("caps");
        for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
            kstr(caps[i][0], status_field(status, caps[i][1]));
        jclose('}');
    }

    int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
    key("no_new_privs");
    if (nnp < 0)
        jnull();
    else
        jbool(nnp);

    kstr("seccomp", status ? status_field(status, "Seccomp") : NULL);
}

static void probe_uts(void)
{
    struct utsname u;
    if (uname(&u) < 0) {
        knull("hostname");
        knull("domainname");
        return;
    }
    kstr("hostname", u.nodename);
    kstr("domainname", u.domainname);
}

static void probe_process(char **envp)
{
    char cwd[PATH_MAX];
    kstr("cwd", getcwd(cwd, sizeof(cwd)));

    int n = 0;
    while (envp[n])
        n++;
    char **env = calloc(n + 1, sizeof(char *));
    memcpy(env, envp, n * sizeof(char *));
    qsort(env, n, sizeof(env[0]), cmp_str);
    karr("env");
    for (int i = 0; i < n; i++)
        jstr(env[i]);
    jclose(']');
    free(env);

    mode_t mask = umask(0);
    umask(mask);
    char buf[8];
    snprintf(buf, sizeof(buf), "%04o", (unsigned)mask);
    kstr("umask", buf);
}

static void probe_rlimits(void)
{
    static const struct {
        const char *name;
        int resource;
    } limits[] = {
        {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_CORE", RLIMIT_CORE},
        {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_DATA", RLIMIT_DATA},
        {"RLIMIT_FSIZE", RLIMIT_FSIZE},     {"RLIMIT_LOCKS", RLIMIT_LOCKS},
        {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
        {"RLIMIT_NICE", RLIMIT_NICE},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
        {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},   {"RLIMIT_RTTIME", RLIMIT_RTTIME},
        {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_STACK", RLIMIT_STACK},
    };
    kobj("rlimits");
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        struct rlimit rl;
        key(limits[i].name);
        if (getrlimit(limits[i].resource, &rl) < 0) {
            jnull();
            continue;
        }
        jopen('[');
        rlim_t v[2] = {rl.rlim_cur, rl.rlim_max};
        for (int j = 0; j < 2; j++) {
            if (v[j] == RLIM_INFINITY)
                jstr("unlimited");
            else
                jint((long long)v[j]);
        }
        jclose(']');
    }
    jclose('}');
}

static void probe_oom(void)
{
    char *s = read_file("/proc/self/oom_score_adj");
    if (!s) {
        knull("oom_score_adj");
        return;
    }
    kint("oom_score_adj", atoll(s));
    free(s);
}

static void probe_namespaces(void)
{
    static const char *const names[] = {"pid", "net", "ipc",    "uts",
                                        "mnt", "user", "cgroup", "time"};
    kobj("namespaces");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[64], target[256];
        snprintf(path, sizeof(path), "/proc/self/ns/%s", names[i]);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        key(names[i]);
        if (n < 0) {
            jnull();
            continue;
        }
        target[n] = '\0';
        jstr(target);
    }
    jclose('}');
}

/* Propagation from mountinfo's optional fields: shared:N, master:N,
 * propagate_from:N, unbindable; none of them means private. */
static const char *propagation(char **opt, int nopt)
{
    int shared = 0, master = 0, unbindable = 0;
    for (int i = 0; i < nopt; i++) {
        if (strncmp(opt[i], "shared:", 7) == 0)
            shared = 1;
        else if (strncmp(opt[i], "master:", 7) == 0)
            master = 1;
        else if (strcmp(opt[i], "unbindable") == 0)
            unbindable = 1;
    }
    if (unbindable)
        return "unbindable";
    if (shared && master)
        return "shared,master";
    if (shared)
        return "shared";
    if (master)
        return "master";
    return "private";
}

static void probe_mounts(void)
{
    char *info = read_file("/proc/self/mountinfo");
    if (!info) {
        knull("mounts");
        return;
    }
    karr("mounts");
    char *save = NULL;
    for (char *line = strtok_r(info, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        /* id parent maj:min root target vfs_opts [optional...] - fstype
         * source super_opts */
        char *f[64];
        int nf = 0;
        char *s2 = NULL;
        for (char *t = strtok_r(line, " ", &s2); t && nf < 64;
             t = strtok_r(NULL, " ", &s2))
            f[nf++] = t;
        int dash = -1;
        for (int i = 6; i < nf; i++) {
            if (strcmp(f[i], "-") == 0) {
                dash = i;
                break;
            }
        }
        if (nf < 7 || dash < 0 || dash + 2 >= nf)
            continue;
        unescape_octal(f[3]);
        unescape_octal(f[4]);
        jopen('{');
        kstr("target", f[4]);
        kstr("root", f[3]);
        kstr("fstype", dash + 1 < nf ? f[dash + 1] : NULL);
        if (dash + 2 < nf)
            unescape_octal(f[dash + 2]);
        kstr("source", dash + 2 < nf ? f[dash + 2] : NULL);
        key("vfs_options");
        sorted_csv(f[5]);
        key("super_options");
        if (dash + 3 < nf)
            sorted_csv(f[dash + 3]);
        else
            jnull();
        kstr("propagation", propagation(&f[6], dash - 6));
        jclose('}');
    }
    jclose(']');
    free(info);
}

static char type_char(mode_t m)
{
    if (S_ISCHR(m)) return 'c';
    if (S_ISBLK(m)) return 'b';
    if (S_ISFIFO(m)) return 'p';
    if (S_ISSOCK(m)) return 's';
    if (S_ISDIR(m)) return 'd';
    if (S_ISLNK(m)) return 'l';
    return 'f';
}

static void emit_dev_entry(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return;
    char type[2] = {type_char(st.st_mode), '\0'};
    char mode[8];
    snprintf(mode, sizeof(mode), "%04o", (unsigned)(st.st_mode & 07777));
    jopen('{');
    kstr("name", path);
    kstr("type", type);
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
        kint("major", major(st.st_rdev));
        kint("minor", minor(st.st_rdev));
    } else {
        knull("major");
        knull("minor");
    }
    kstr("mode", mode);
    kint("uid", st.st_uid);
    kint("gid", st.st_gid);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n >= 0) {
            target[n] = '\0';
            kstr("link", target);
        } else {
            knull("link");
        }
    } else {
        knull("link");
    }
    jclose('}');
}

/* Collects "dir/name" for every entry of dir (no . and ..); returns count. */
static int list_dir(const char *dir, char **out, int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (asprintf(&out[n], "%s/%s", dir, e->d_name) >= 0)
            n++;
    }
    closedir(d);
    return n;
}

static void probe_dev(void)
{
    static char *items[MAX_ITEMS];
    int n = list_dir("/dev", items, MAX_ITEMS);
    if (n < 0) {
        knull("dev");
        return;
    }
    /* One level into the directories runtimes mount inside /dev. */
    static const char *const subdirs[] = {"/dev/pts", "/dev/shm", "/dev/mqueue"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        int m = list_dir(subdirs[i], items + n, MAX_ITEMS - n);
        if (m > 0)
            n += m;
    }
    qsort(items, n, sizeof(items[0]), cmp_str);
    karr("dev");
    for (int i = 0; i < n; i++) {
        emit_dev_entry(items[i]);
        free(items[i]);
    }
    jclose(']');
}

static void probe_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        knull("fds");
        return;
    }
    int self = dirfd(d);
    int fds[MAX_ITEMS], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_ITEMS) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != self)
            fds[n++] = fd;
    }
    /* Sort numerically: readdir order is not guaranteed. */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    karr("fds");
    for (int i = 0; i < n; i++) {
        char path[64], target[PATH_MAX];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlinkat(self, path + strlen("/proc/self/fd/"), target,
                                 sizeof(target) - 1);
        jopen('{');
        kint("fd", fds[i]);
        if (len >= 0) {
            target[len] = '\0';
            kstr("target", target);
        } else {
            knull("target");
        }
        jclose('}');
    }
    jclose(']');
    closedir(d);
}

/* Returns IFF_* flags of an interface, or -1. */
static int if_flags(int sock, const char *name)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        return -1;
    return ifr.ifr_flags;
}

static void probe_net(void)
{
    char *dev = read_file("/proc/net/dev");
    if (!dev) {
        knull("interfaces");
        knull("loopback_up");
        return;
    }
    char *names[256];
    int n = 0;
    char *save = NULL;
    /* The first two lines are headers; names end at ':'. */
    int lineno = 0;
    for (char *line = strtok_r(dev, "\n", &save); line && n < 256;
         line = strtok_r(NULL, "\n", &save)) {
        if (lineno++ < 2)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        while (*line == ' ')
            line++;
        names[n++] = line;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int lo_flags = -2; /* -2: no "lo" at all */
    karr("interfaces");
    for (int i = 0; i < n; i++) {
        int flags = if_flags(sock, names[i]);
        if (strcmp(names[i], "lo") == 0)
            lo_flags = flags;
        jopen('{');
        kstr("name", names[i]);
        key("up");
        if (flags < 0)
            jnull();
        else
            jbool(flags & IFF_UP);
        jclose('}');
    }
    jclose(']');
    key("loopback_up");
    if (lo_flags < 0)
        jnull();
    else
        jbool(lo_flags & IFF_UP);
    if (sock >= 0)
        close(sock);
    free(dev);
}

/* runc masks a file by bind-mounting /dev/null over it and a directory by
 * mounting an empty read-only tmpfs on it; report which one we see. */
static const char *mask_state(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return "absent";
    if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
        return "masked";
    if (S_ISDIR(st.st_mode)) {
        struct statfs sf;
        if (statfs(path, &sf) == 0 && sf.f_type == TMPFS_MAGIC_) {
            char *items[2];
            int n = list_dir(path, items, 2);
            for (int i = 0; i < n; i++)
                free(items[i]);
            if (n == 0)
                return "masked";
        }
        return "visible";
    }
    /* A regular file masked some other way would read as empty. */
    if (S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return "unreadable";
        char c;
        ssize_t r = read(fd, &c, 1);
        close(fd);
        if (r < 0)
            return "unreadable";
    }
    return "visible";
}

static void probe_masked_readonly(const char **extra_masked, int n_masked,
                                  const char **extra_ro, int n_ro)
{
    static const char *const masked[] = {
        "/proc/acpi",        "/proc/asound",        "/proc/kcore",
        "/proc/keys",        "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug",   "/sys/firmware",
        "/proc/scsi"};
    static const char *const readonly[] = {"/proc/bus", "/proc/fs", "/proc/irq",
                                           "/proc/sys", "/proc/sysrq-trigger"};
    kobj("masked");
    for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++)
        kstr(masked[i], mask_state(masked[i]));
    for (int i = 0; i < n_masked; i++)
        kstr(extra_masked[i], mask_state(extra_masked[i]));
    jclose('}');

    kobj("readonly");
    size_t nro = sizeof(readonly) / sizeof(readonly[0]);
    for (size_t i = 0; i < nro + (size_t)n_ro; i++) {
        const char *p = i < nro ? readonly[i] : extra_ro[i - nro];
        struct statvfs sv;
        key(p);
        if (statvfs(p, &sv) < 0)
            jnull();
        else
            jbool(!!(sv.f_flag & ST_RDONLY));
    }
    jclose('}');

    struct statvfs sv;
    key("rootfs_readonly");
    if (statvfs("/", &sv) < 0)
        jnull();
    else
        jbool(!!(sv.f_flag & ST_RDONLY));
}

static void probe_sysctl(void)
{
    static const char *const names[] = {"net.ipv4.ip_forward", "kernel.shmmax",
                                        "kernel.msgmax", "net.core.somaxconn"};
    kobj("sysctl");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[128] = "/proc/sys/";
        size_t off = strlen(path);
        for (const char *c = names[i]; *c && off < sizeof(path) - 1; c++)
            path[off++] = *c == '.' ? '/' : *c;
        path[off] = '\0';
        char *v = read_file(path);
        if (v)
            rstrip(v);
        kstr(names[i], v);
        free(v);
    }
    jclose('}');
}

static void probe_sched(void)
{
    int pers = personality(0xffffffff);
    key("personality");
    if (pers < 0)
        jnull();
    else
        jint(pers);

    kobj("sched");
    int policy = sched_getscheduler(0);
    const char *name = policy == SCHED_OTHER   ? "SCHED_OTHER"
                       : policy == SCHED_FIFO  ? "SCHED_FIFO"
                       : policy == SCHED_RR    ? "SCHED_RR"
                       : policy == SCHED_BATCH ? "SCHED_BATCH"
                       : policy == SCHED_IDLE  ? "SCHED_IDLE"
                                               : NULL;
    kstr("policy", name);
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    key("nice");
    if (nice == -1 && errno)
        jnull();
    else
        jint(nice);
    jclose('}');
}

static void probe_cgroup(void)
{
    char *cg = read_file("/proc/self/cgroup");
    if (!cg) {
        knull("cgroup");
        return;
    }
    karr("cgroup");
    char *save = NULL;
    for (char *line = strtok_r(cg, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        jstr(line);
    jclose(']');
    free(cg);
}

int main(int argc, char **argv, char **envp)
{
    long sleep_s = 0;
    int exit_code = 0;
    const char *extra_masked[MAX_EXTRA], *extra_ro[MAX_EXTRA];
    int n_masked = 0, n_ro = 0;

    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--sleep") == 0 && next) {
            sleep_s = atol(next);
            i++;
        } else if (strcmp(argv[i], "--exit") == 0 && next) {
            exit_code = atoi(next);
            i++;
        } else if (strcmp(argv[i], "--masked") == 0 && next && n_masked < MAX_EXTRA) {
            extra_masked[n_masked++] = next;
            i++;
        } else if (strcmp(argv[i], "--readonly") == 0 && next && n_ro < MAX_EXTRA) {
            extra_ro[n_ro++] = next;
            i++;
        } else {
            fprintf(stderr,
                    "usage: %s [--sleep N] [--exit N] [--masked PATH]... "
                    "[--readonly PATH]...\n",
                    argv[0]);
            return 2;
        }
    }

    /* One status read serves caps and seccomp. */
    char *status = read_file("/proc/self/status");

    jopen('{');
    kint("probe_version", 1);
    probe_ids();
    probe_status(status);
    probe_uts();
    probe_process(envp);
    probe_rlimits();
    probe_oom();
    probe_namespaces();
    kint("pid", getpid());
    probe_mounts();
    probe_dev();
    probe_fds();
    probe_net();
    probe_masked_readonly(extra_masked, n_masked, extra_ro, n_ro);
    probe_sysctl();
    probe_sched();
    probe_cgroup();
    jclose('}');
    putchar('\n');
    fflush(stdout);
    free(status);

    if (sleep_s > 0)
        sleep((unsigned)sleep_s);
    return exit_code;
}
