/* Thin libseccomp wrappers for the cffi module; see seccomp.h. */
#include "seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>

/* libseccomp returns -errno; the shim's convention is -1 and errno. */
static int unfold(int rc)
{
    if (rc >= 0)
        return rc;
    errno = -rc;
    return -1;
}

void *ocirt_scmp_new(uint32_t default_action)
{
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (ctx == NULL)
        errno = EINVAL; /* seccomp_init says only "NULL": a bad action, or ENOMEM */
    return ctx;
}

void ocirt_scmp_free(void *ctx) { seccomp_release(ctx); }

uint32_t ocirt_scmp_arch_token(const char *name) { return seccomp_arch_resolve_name(name); }

uint32_t ocirt_scmp_arch_native(void) { return seccomp_arch_native(); }

int ocirt_scmp_arch_add(void *ctx, uint32_t arch)
{
    int rc = seccomp_arch_add(ctx, arch);
    return rc == -EEXIST ? 0 : unfold(rc);
}

int ocirt_scmp_attr_set(void *ctx, int attr, uint32_t value)
{
    return unfold(seccomp_attr_set(ctx, (enum scmp_filter_attr)attr, value));
}

int ocirt_scmp_syscall_number(uint32_t arch, const char *name)
{
    int nr = seccomp_syscall_resolve_name_arch(arch, name);
    return nr == __NR_SCMP_ERROR ? -1 : nr;
}

int ocirt_scmp_rule_add(void *ctx, uint32_t action, int nr, unsigned int n,
                        const unsigned int *index, const int *op, const uint64_t *a,
                        const uint64_t *b)
{
    struct scmp_arg_cmp conds[6];
    if (n > 6) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        conds[i].arg = index[i];
        conds[i].op = (enum scmp_compare)op[i];
        conds[i].datum_a = a[i];
        conds[i].datum_b = b[i];
    }
    /* Not the _exact variant: libseccomp may rewrite a rule per
     * architecture (socketcall multiplexing on x86), as runc lets it.   */
    return unfold(seccomp_rule_add_array(ctx, action, nr, n, conds));
}

int ocirt_scmp_export_bpf(void *ctx, int fd) { return unfold(seccomp_export_bpf(ctx, fd)); }

unsigned int ocirt_scmp_version(void)
{
    const struct scmp_version *v = seccomp_version();
    return v->major * 10000 + v->minor * 100 + v->micro;
}

unsigned int ocirt_scmp_api_level(void) { return seccomp_api_get(); }

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int ocirt_seccomp_load(unsigned int flags, const void *insns, unsigned int count)
{
    struct sock_fprog prog = {(unsigned short)count, (struct sock_filter *)insns};
    if (count > BPF_MAXINSNS) {
        errno = E2BIG;
        return -1;
    }
    if (flags == 0)
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    return rc < 0 ? -1 : (int)rc;
}

int ocirt_seccomp_flag_supported(unsigned int flag)
{
    /* libseccomp's probe: a NULL program faults (EFAULT) only after the
     * kernel has accepted the flags; unknown flags are EINVAL first.  */
    long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flag, NULL);
    return rc < 0 && errno == EFAULT;
}
