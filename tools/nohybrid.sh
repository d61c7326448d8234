#!/bin/sh
# usage: tools/nohybrid.sh CMD [ARG...]
#
# Runs CMD in a private mount namespace where this hybrid host's cgroup2 mount
# (/sys/fs/cgroup/unified) is replaced by an empty tmpfs: crun 1.8.1 refuses a
# hybrid host whenever cgroup2 has a controller ("cgroups in hybrid mode not
# supported"), and sees plain cgroup v1 this way.  ../shared/tools/nohybrid only
# unmounts it, which reveals the directory under the mount, on the host's
# /sys/fs/cgroup tmpfs: crun then makes plain directories and a cgroup.procs
# file there for every container, which stay on the host, hidden under its
# cgroup2 mount.  The tmpfs takes them instead and goes with the namespace.
# Host mounts are not changed.  Wrap a whole run (a benchmark, a test's crun
# calls), as crun's create and delete must see the same directory.
exec unshare -m --propagation private sh -c '
    umount /sys/fs/cgroup/unified 2>/dev/null
    if [ -d /sys/fs/cgroup/unified ]; then
        mount -t tmpfs -o size=4m,mode=755 ocirt-nohybrid /sys/fs/cgroup/unified
    fi
    exec "$@"' nohybrid "$@"
