/* libseccomp, as much of it as ocirt/linux/seccomp.py needs to compile a
 * runtime-spec linux.seccomp object into a BPF program (never to load it:
 * stage 2 loads the exported program, see stage2.c).
 * Like shim.h: -1 with errno set on failure (libseccomp's -errno unfolded),
 * so syscalls.py-style wrappers can raise OSError.                       */
#include <stdint.h>

/* A filter context (scmp_filter_ctx); NULL with errno on failure. */
void *ocirt_scmp_new(uint32_t default_action);
void ocirt_scmp_free(void *ctx);
/* seccomp_arch_resolve_name: "x86_64" -> token (an AUDIT_ARCH_* value,
 * except x32's); 0 when libseccomp does not know the name.             */
uint32_t ocirt_scmp_arch_token(const char *name);
uint32_t ocirt_scmp_arch_native(void);
/* Adds ARCH to CTX; adding one already there is not an error. */
int ocirt_scmp_arch_add(void *ctx, uint32_t arch);
int ocirt_scmp_attr_set(void *ctx, int attr, uint32_t value);
/* The syscall's number on ARCH (0 = native); -1 when unknown there.
 * Negative pseudo-numbers (multiplexed calls) are returned as they are. */
int ocirt_scmp_syscall_number(uint32_t arch, const char *name);
/* One rule: ACTION when syscall NR matches all N conditions
 * (arg index, SCMP_CMP_* op, datum a, datum b).                         */
int ocirt_scmp_rule_add(void *ctx, uint32_t action, int nr, unsigned int n,
                        const unsigned int *index, const int *op, const uint64_t *a,
                        const uint64_t *b);
/* Writes the struct sock_filter array to FD (host byte order). */
int ocirt_scmp_export_bpf(void *ctx, int fd);
/* Library version (major*10000 + minor*100 + micro) and API level. */
unsigned int ocirt_scmp_version(void);
unsigned int ocirt_scmp_api_level(void);
/* seccomp(SECCOMP_SET_MODE_FILTER, FLAGS) of COUNT struct sock_filter at
 * INSNS on the calling thread (prctl when FLAGS is 0): the Python stage's
 * early load.  Returns the listener fd with SECCOMP_FILTER_FLAG_NEW_LISTENER,
 * else 0.                                                               */
int ocirt_seccomp_load(unsigned int flags, const void *insns, unsigned int count);
/* 1 when this kernel accepts filter flag FLAG, 0 when not (EINVAL). */
int ocirt_seccomp_flag_supported(unsigned int flag);
