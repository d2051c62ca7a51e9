#!/bin/sh
# /init of arca's test guest (busybox, the cloud kernel's virtio modules, the probe tool).
# It brings eth0 up, takes a DHCP lease, runs the probes named on the kernel command line and
# powers off. Every result is one "ARCA-..." line on the serial console, which is what the test reads:
#   arca.probe=udp:IP:PORT:MESSAGE  arca.probe=tcp:IP:PORT  arca.probe=ping:IP  (in the given order)
#   arca.timeout_ms=N  how long each probe waits (default 1500)
# With arca.root=DEV it only loads the modules, mounts DEV and hands over to its /sbin/init (the
# optional Debian guest, scripts/build-test-vm-debian.mjs).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "ARCA-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"

for m in $(cat /modules/order); do
  insmod "/modules/$m.ko" || echo "ARCA-ERROR insmod $m"
done

for w in $(cat /proc/cmdline); do
  case "$w" in arca.root=*) root=${w#arca.root=} ;; esac
done
if [ -n "$root" ]; then
  mkdir -p /newroot
  i=0
  while [ ! -e "$root" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  mount -t ext4 -o rw "$root" /newroot || { echo "ARCA-ERROR cannot mount $root"; poweroff -f; }
  umount /proc /sys
  mount --move /dev /newroot/dev
  exec switch_root /newroot /sbin/init
fi

i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -e /sys/class/net/eth0 ]; then
  echo "ARCA-ERROR no eth0"
  poweroff -f
fi
ip link set lo up
ip link set eth0 up

timeout_ms=1500
for w in $(cat /proc/cmdline); do
  case "$w" in arca.timeout_ms=*) timeout_ms=${w#arca.timeout_ms=} ;; esac
done

if udhcpc -i eth0 -n -q -t 5 -T 1 -s /lease-hook >/dev/null 2>&1; then
  :
else
  echo "ARCA-ERROR no lease"
fi

n=0
for w in $(cat /proc/cmdline); do
  case "$w" in
    arca.probe=*) spec=${w#arca.probe=} ;;
    *) continue ;;
  esac
  n=$((n + 1))
  IFS=: read -r kind a b c <<END
$spec
END
  case "$kind" in
    udp) out=$(probe udp "$a" "$b" "$c" "$timeout_ms") ;;
    tcp) out=$(probe tcp "$a" "$b" "$timeout_ms") ;;
    ping)
      if ping -c 1 -W $(((timeout_ms + 999) / 1000)) "$a" >/dev/null 2>&1; then out=ok; else out=timeout; fi
      ;;
    *) out="error unknown probe" ;;
  esac
  echo "ARCA-PROBE $n $spec $out"
done

echo "ARCA-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
