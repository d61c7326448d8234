#!/bin/sh
# usage: mkrootfs.sh DIR
#
# Builds a minimal busybox root filesystem in DIR from the host's static
# busybox (Debian's busybox-static): bin/busybox, a symlink per applet, a
# small /etc/passwd and /etc/group, and the empty directories a container
# expects.  Idempotent (safe to rerun on the same DIR) and offline.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
busybox=${BUSYBOX:-/bin/busybox}

# A dynamically linked busybox would not run inside a rootfs without libc.
if ! [ -x "$busybox" ]; then
    echo "mkrootfs: $busybox not found (apt-get install busybox-static)" >&2
    exit 1
fi
if ! "$busybox" --list >/dev/null 2>&1; then
    echo "mkrootfs: $busybox does not support --list" >&2
    exit 1
fi

for d in bin proc sys dev tmp etc root home run var/tmp usr/bin sbin; do
    mkdir -p "$dir/$d"
done
chmod 1777 "$dir/tmp" "$dir/var/tmp"
chmod 0700 "$dir/root"

# cp then rename so a rerun never leaves a half-written binary behind.
if ! cmp -s "$busybox" "$dir/bin/busybox" 2>/dev/null; then
    cp "$busybox" "$dir/bin/busybox.tmp"
    chmod 0755 "$dir/bin/busybox.tmp"
    mv -f "$dir/bin/busybox.tmp" "$dir/bin/busybox"
fi

# One relative symlink per applet; existing ones are skipped (fast reruns).
"$busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] && continue
    [ -L "$dir/bin/$applet" ] || ln -sf busybox "$dir/bin/$applet"
done

cat >"$dir/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
probe:x:1000:1000:probe:/home/probe:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD

cat >"$dir/etc/group" <<'GROUP'
root:x:0:
wheel:x:10:
sudo:x:27:
probe:x:1000:
nogroup:x:65534:
GROUP
chmod 0644 "$dir/etc/passwd" "$dir/etc/group"
