#!/bin/sh
# udhcpc's hook in the test guest: apply the lease and report it on the console.
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    # udhcpc's own output is discarded by /init: the console is where the test reads.
    echo "ARCA-LEASE ip=$ip mask=$mask router=$router serverid=$serverid lease=$lease dns=$dns" >/dev/console
    ;;
  deconfig)
    ip addr flush dev "$interface"
    ;;
esac
exit 0
