/* glibc has no bpf() wrapper: call the syscall directly. */
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf.h"

int ocirt_bpf(int cmd, void *attr, unsigned int size)
{
    return (int)syscall(SYS_bpf, cmd, attr, size);
}
