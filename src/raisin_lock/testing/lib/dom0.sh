# Inside dom0 (rt_dom0 installs this as /lib/raisin/dom0.sh; dom0's init
# sources it, then each /etc/raisin-test/*.sh hook). POSIX sh, busybox.

say() { echo "raisin-dom0: $*"; }

# rt_load_modules: insmod /lib/modules/*.ko in the order rt_modules wrote
# (dom0's list, then the overlays'); a module already loaded is fine.
rt_load_modules() {
  local m
  for m in $(cat /lib/modules/order* 2>/dev/null); do
    insmod /lib/modules/$m.ko 2>/dev/null || grep -q "^$(echo $m | tr - _) " /proc/modules || say "insmod $m failed"
  done
}

# rt_consoled: xenconsoled, logging every guest's console to /var/log/xen/console.
rt_consoled() {
  pidof xenconsoled > /dev/null && return 0
  xenconsoled --log=guest --log-dir=/var/log/xen/console || say "xenconsoled did not start"
}

# rt_wait_gone NAME [SECONDS]: until domain NAME is gone (it powered off), at most SECONDS (240).
rt_wait_gone() {
  local i=0
  while [ $i -lt "${2:-240}" ] && xl list "$1" > /dev/null 2>&1; do sleep 1; i=$((i + 1)); done
}

# rt_show_console NAME: the guest's console logs, each line prefixed "guest: "
# (the PV console that xenconsoled logged, the serial port a device model wrote).
rt_show_console() {
  local f
  for f in /var/log/xen/console/guest-$1.log /var/log/xen/console/serial-$1.log; do
    [ -e "$f" ] && sed 's/^/guest: /' "$f"
  done
  return 0
}

# rt_show_dm NAME: the device model's log (qemu-dm), each line prefixed "dm: ".
rt_show_dm() {
  [ -e /var/log/xen/qemu-dm-$1.log ] && sed 's/^/dm: /' /var/log/xen/qemu-dm-$1.log
  return 0
}

# rt_follow_console NAME: print the guest's console logs as they grow, each
# line prefixed "guest: " (so a test's fail-on patterns fire while the guest
# runs, not after it); rt_unfollow_console NAME stops that.
rt_follow_console() {
  local f i=0
  for f in /var/log/xen/console/guest-$1.log /var/log/xen/console/serial-$1.log; do
    i=$((i + 1))
    (tail -n +1 -F "$f" 2> /dev/null & echo $! > /tmp/follow-$1.$i; wait) | sed 's/^/guest: /' &
  done
}
rt_unfollow_console() {
  sleep 2 # tail polls once a second: let it print the last lines
  kill $(cat /tmp/follow-$1.* 2> /dev/null) 2> /dev/null
  rm -f /tmp/follow-$1.*
  return 0
}

# rt_check_dm NAME: if the overlay carries /etc/raisin-test/qemu-xen.sha256
# (rt_dm_overlay writes it), the device model running for domain NAME must be
# that binary, the realized qemu-xen: says so, or fails dom0 (RAISIN-DOM0-FAILED).
rt_check_dm() {
  local want id p exe got
  [ -e /etc/raisin-test/qemu-xen.sha256 ] || return 0
  want=$(cat /etc/raisin-test/qemu-xen.sha256)
  id=$(xl domid "$1" 2> /dev/null) || { echo "RAISIN-DOM0-""FAILED: $1: no domain"; return 0; }
  for p in /proc/[0-9]*; do
    tr '\0' ' ' < $p/cmdline 2> /dev/null | grep -q -- "-xen-domid $id " || continue
    exe=$(readlink $p/exe)
    got=$(sha256sum $p/exe | cut -d' ' -f1)
    if [ "$got" = "$want" ]; then
      say "$1: device model $exe is the realized qemu-xen"
    else
      echo "RAISIN-DOM0-""FAILED: $1: device model $exe is not the realized qemu-xen (sha256 $got, expected $want)"
    fi
    return 0
  done
  echo "RAISIN-DOM0-""FAILED: $1: no device model runs for domain $id"
}

# rt_xl_guest NAME [SECONDS]: xl create /guest/NAME/guest.cfg with its console
# followed (and its device model checked while it runs: rt_check_dm, said
# after the console, so in a fixed order), wait for the guest to power off
# (at most SECONDS), say "guest NAME done".
rt_xl_guest() {
  rt_consoled
  rt_follow_console $1
  rm -f /tmp/dm-check-$1
  if xl create /guest/$1/guest.cfg; then
    rt_check_dm $1 > /tmp/dm-check-$1
    rt_wait_gone $1 "${2:-240}"
    xl list
    xl destroy $1 2> /dev/null
  else
    say "xl create failed: $1"
    rt_show_dm $1
  fi
  rt_unfollow_console $1
  cat /tmp/dm-check-$1 2> /dev/null
  say "guest $1 done"
}
