/* bpf(2), for the cgroup v2 device filter (ocirt/cgroups/devices_bpf.py).
 * ATTR is a union bpf_attr laid out by the caller; returns -1 with errno set. */
int ocirt_bpf(int cmd, void *attr, unsigned int size);
