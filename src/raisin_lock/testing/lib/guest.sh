# raisin's shell library for boot tests: sourced by a test's first step,
#   . "$RAISIN_TEST_LIB/guest.sh"
# One initramfs builder, one disk-image maker, one QEMU command line, shared
# by dom0-boots and every guest test (and free for raisin.toml tests to use).
# POSIX sh plus `local` (dash, busybox sh); safe under `set -eu`.
#
# Inputs it reads, when a function needs them: $xen (the realized Xen),
# $kernel and $busybox (the Debian binary inputs of dom0-boots), and
# $dom0_boots_dir (the directory dom0-boots left: xen, vmlinuz, rootfs/,
# dom0.cpio.gz). Knobs: RT_CPU (QEMU -cpu; PVH/HVM need an SVM CPU, see
# rt_cpu), RT_MEM (MiB, default 1024), RT_XEN_ARGS (more Xen arguments),
# RT_QEMU (the emulator; default: the host's qemu-system-x86_64) and
# RT_QEMU_DATA (directories of its firmware, colon-separated, each an -L:
# an emulator built without blobs uses the host's, e.g. Debian's
# /usr/share/qemu:/usr/share/seabios).

RT_LIB=${RAISIN_TEST_LIB:-$(pwd)}

# rt_busybox: path of the static busybox (the $busybox input, else dom0-boots' copy).
rt_busybox() {
  for f in ${busybox:+$busybox/bin/busybox $busybox/usr/bin/busybox} ${dom0_boots_dir:+$dom0_boots_dir/rootfs/bin/busybox}; do
    if [ -x "$f" ]; then echo "$f"; return 0; fi
  done
  echo "raisin: no busybox: neither a \$busybox input nor \$dom0_boots_dir" >&2
  return 1
}

# rt_kernel_tree: the unpacked kernel package (the $kernel input, else dom0-boots').
rt_kernel_tree() {
  if [ -n "${kernel:-}" ]; then echo "$kernel"; return 0; fi
  if [ -n "${dom0_boots_dir:-}" ] && [ -e "$dom0_boots_dir/kernel-tree" ]; then
    readlink -f "$dom0_boots_dir/kernel-tree"; return 0
  fi
  echo "raisin: no kernel: neither a \$kernel input nor \$dom0_boots_dir" >&2
  return 1
}

# rt_root DIR INIT: a busybox root in DIR whose /init is the file INIT.
rt_root() {
  local bb
  bb=$(rt_busybox)
  mkdir -p "$1/bin" "$1/proc" "$1/sys" "$1/dev" "$1/lib/modules" "$1/etc"
  cp "$bb" "$1/bin/busybox"
  cp "$2" "$1/init"
  chmod 755 "$1/init"
}

# rt_modules ROOT NAME...: kernel modules NAME (and what they depend on, as
# modinfo says) into ROOT/lib/modules, their load order in
# ROOT/lib/modules/order (an overlay sets RT_MODULE_ORDER=order-NAME so as not
# to replace dom0's list; the inits load every order* file).
rt_modules() {
  local root=$1
  shift
  mkdir -p "$root/lib/modules"
  touch "$root/lib/modules/${RT_MODULE_ORDER:-order}"
  for m in "$@"; do rt_module_ "$root" "$m"; done
}
rt_module_() {
  local root=$1 name=$2 tree file dep
  if grep -qx "$name" "$root/lib/modules/${RT_MODULE_ORDER:-order}"; then return 0; fi
  tree=$(rt_kernel_tree)
  file=$(find "$tree" \( -name "$name.ko" -o -name "$(echo "$name" | tr _ -).ko" -o -name "$(echo "$name" | tr - _).ko" \) | head -n 1)
  if [ -z "$file" ]; then echo "raisin: kernel module $name is not in $tree" >&2; return 1; fi
  dep=$(modinfo -F depends "$file")
  for dep in $(echo "$dep" | tr ',' ' '); do rt_module_ "$root" "$dep"; done
  cp "$file" "$root/lib/modules/$name.ko"
  echo "$name" >> "$root/lib/modules/${RT_MODULE_ORDER:-order}"
}

# rt_initramfs DIR OUT: DIR as the kernel's initramfs format (newc cpio, gzip).
# Archives concatenate: the kernel unpacks dom0.cpio.gz, then an overlay.
rt_initramfs() {
  local bb
  bb=$(rt_busybox)
  (cd "$1" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc 2>/dev/null) | gzip -1n > "$2"
}

# rt_disk IMG DIR [MiB]: an ext2 disk image holding DIR's files, made without
# root (mke2fs -d); ext2 is what every reader here has (GRUB, Linux's ext4).
rt_disk() {
  rm -f "$1"
  mke2fs -q -F -t ext2 -L raisin -E root_owner=0:0 -d "$2" "$1" "${3:-16}M"
}

# rt_fat_disk IMG DIR [MiB]: a FAT disk image (no partition table) holding
# DIR's files, made without root (mtools): what UEFI firmware reads.
rt_fat_disk() {
  local img
  rm -f "$1"
  truncate -s "${3:-32}M" "$1"
  img=$(readlink -f "$1")
  mformat -i "$img" -v RAISIN ::
  (cd "$2" && find . -mindepth 1 -type d | LC_ALL=C sort | while read -r d; do mmd -i "$img" "::/${d#./}"; done)
  (cd "$2" && find . -type f | LC_ALL=C sort | while read -r f; do mcopy -i "$img" "$f" "::/${f#./}"; done)
}

# rt_copy_bin ROOT FILE: FILE at the same path under ROOT (FILE is under $xen
# or another store path: its prefix is cut), plus the host libraries it
# links (ldd, with the Xen libraries on the path).
rt_copy_bin() {
  local root=$1 f=$2 rel lib
  rel=${f#"${3:-$xen}"}
  install -D "$f" "$root$rel"
  LD_LIBRARY_PATH=$xen/usr/lib:$xen/usr/lib64 ldd "$f" | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) .*/\1/p' | while read -r lib; do
    case $lib in "$xen"/*) continue ;; esac
    [ -e "$root$lib" ] || install -D -m 755 "$(readlink -f "$lib")" "$root$lib"
  done
}

# rt_dom0: dom0-boots' parts in the current directory: xen (unpacked), vmlinuz,
# rootfs/ (busybox, Xen drivers, the Xen tools and their libraries, the dom0
# init and its library) and dom0.cpio.gz.
rt_dom0() {
  local r=rootfs kfile name f d
  kfile=$(ls "$kernel"/boot/vmlinuz-* | head -n 1)
  zcat "$xen/boot/xen.gz" > xen
  cp "$kfile" vmlinuz
  ln -sfn "$kernel" kernel-tree
  rt_root $r "$RT_LIB/dom0-init"
  mkdir -p $r/etc/raisin-test $r/lib/raisin
  cp "$RT_LIB/dom0.sh" $r/lib/raisin/dom0.sh
  rt_modules $r xen-evtchn xen-privcmd xen-gntdev xen-gntalloc xenfs
  for d in usr/lib usr/lib64; do
    if ls "$xen/$d"/*.so* > /dev/null 2>&1; then mkdir -p "$r/$d" && cp -a "$xen/$d"/*.so* "$r/$d/"; fi
  done
  for name in xl xenstored xenconsoled xen-init-dom0 xenstore-ls xenstore-read xenstore-write libxl-save-helper; do
    f=$(find "$xen/usr" -name $name -type f | head -n 1)
    if [ -z "$f" ]; then echo "raisin: the xen output has no $name"; return 1; fi
    rt_copy_bin $r "$f"
  done
  # dlopen()ed by glibc for pthread_cancel (xl needs it; ldd does not list it)
  for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib64 /usr/lib64; do
    if [ -e $d/libgcc_s.so.1 ]; then install -D -m 755 "$(readlink -f $d/libgcc_s.so.1)" $r$d/libgcc_s.so.1; break; fi
  done
  if [ -d "$xen/etc/xen" ]; then cp -a "$xen/etc/xen" $r/etc/; fi
  chmod -R u+w $r  # store copies are read-only; the directory must stay removable
  rt_initramfs $r dom0.cpio.gz
  echo "dom0 initramfs: $(du -k dom0.cpio.gz | cut -f1) KiB, kernel $(basename "$kfile")"
}

# rt_guest_initramfs OUT [SCRIPT [MODULE...]]: a guest's busybox initramfs; its
# init loads MODULEs, prints RAISIN-GUEST-OK with the kernel and guest type,
# runs SCRIPT (a file; "-" for none), waits for the console to drain, powers off.
rt_guest_initramfs() {
  local out=$1 script=${2:--} g
  g=guestfs-$(basename "$out" .cpio.gz)
  rm -rf "$g"
  rt_root "$g" "$RT_LIB/guest-init"
  if [ "$script" != "-" ]; then cp "$script" "$g/etc/guest.sh"; fi
  if [ $# -gt 2 ]; then shift 2; rt_modules "$g" "$@"; fi
  rt_initramfs "$g" "$out"
}

# rt_add_guest NAME [HOOK]: dom0-NAME.cpio.gz = dom0's initramfs + an overlay
# holding guest-NAME/ (the guest's config as guest.cfg, its kernel, initramfs,
# disk...) as /guest/NAME and a dom0 hook: HOOK (a file sourced by dom0's
# init after `xl info`, with /lib/raisin/dom0.sh loaded), by default
# `rt_xl_guest NAME` (xl create, wait for it to power off, print its console;
# at most $RAISIN_TEST_TIMEOUT seconds).
# Files in overlay-NAME/ (made by the caller) are added at their paths.
rt_add_guest() {
  local name=$1 hook=${2:-} h
  h=overlay-$name
  mkdir -p "$h/etc/raisin-test" "$h/guest"
  rm -rf "$h/guest/$name"
  cp -a "guest-$name" "$h/guest/$name"
  if [ -n "$hook" ]; then
    cp "$hook" "$h/etc/raisin-test/50-$name.sh"
  else
    echo "rt_xl_guest $name ${RAISIN_TEST_TIMEOUT:-240}" | sed 's/\.[0-9]*$//' > "$h/etc/raisin-test/50-$name.sh"
  fi
  rt_initramfs "$h" "overlay-$name.cpio.gz"
  cat "$dom0_boots_dir/dom0.cpio.gz" "overlay-$name.cpio.gz" > "dom0-$name.cpio.gz"
}

# rt_dm_overlay DIR: what dom0 needs to run HVM guests, into the overlay DIR:
# the realized qemu-xen ($qemu_xen) at /usr/lib/xen/bin with the host
# libraries it links, hvmloader where libxl looks (/usr/lib/xen/boot), and
# the device model's data: qemu-xen's own, plus what it did not build from
# $dmdata (Debian's qemu-system-data: keymaps, which it opens even with no
# display, and linuxboot_dma.bin for `kernel=` boot). The binary's SHA-256
# goes along: dom0 checks that the device model libxl starts is that binary
# (rt_check_dm), so a guest served by any other QEMU fails.
rt_dm_overlay() {
  local o=$1
  rt_copy_bin "$o" "$qemu_xen/usr/lib/xen/bin/qemu-system-i386" "$qemu_xen"
  mkdir -p "$o/etc/raisin-test"
  sha256sum "$qemu_xen/usr/lib/xen/bin/qemu-system-i386" | cut -d' ' -f1 > "$o/etc/raisin-test/qemu-xen.sha256"
  install -D -m 644 "$xen/usr/lib/xen/boot/hvmloader" "$o/usr/lib/xen/boot/hvmloader"
  mkdir -p "$o/usr/share/qemu-xen/qemu"
  if [ -d "$qemu_xen/usr/share/qemu-xen" ]; then cp -a "$qemu_xen/usr/share/qemu-xen/." "$o/usr/share/qemu-xen/"; fi
  chmod -R u+w "$o/usr/share/qemu-xen"
  if [ -n "${dmdata:-}" ]; then cp -an "$dmdata/usr/share/qemu/." "$o/usr/share/qemu-xen/qemu/"; fi
  ln -sfn qemu-xen/qemu "$o/usr/share/qemu"
}

# rt_store_file DIR STOREPATH REL: STOREPATH/REL at the same store path under
# /raisin/store in the overlay DIR: libxl has firmware paths (SeaBIOS, OVMF)
# compiled in as the store paths Xen was built with, where a profile makes
# /raisin/store resolve.
rt_store_file() {
  install -D -m 644 "$2/$3" "$1/raisin/store/$(basename "$2")/$3"
}

# rt_cpu npt|shadow|pv: the QEMU CPU. TCG emulates AMD SVM (not VMX): with NPT
# Xen uses HAP, without it shadow paging; PV needs neither (QEMU's default).
rt_cpu() {
  case $1 in
    npt) RT_CPU=qemu64,+svm,+npt ;;
    shadow) RT_CPU=qemu64,+svm ;;
    pv) RT_CPU= ;;
    *) echo "raisin: rt_cpu: expected npt, shadow or pv, found $1" >&2; return 1 ;;
  esac
}

# rt_boot INITRD: Xen, dom0's kernel and INITRD under QEMU's software emulation,
# Xen's console (com1) on stdout, dom0's on hvc0. Ends when QEMU does.
rt_boot() {
  local d=${dom0_boots_dir:-.} data="" dir
  for dir in $(echo "${RT_QEMU_DATA:-}" | tr ':' ' '); do data="$data -L $dir"; done
  "${RT_QEMU:-qemu-system-x86_64}" $data -nodefaults -display none -monitor none -serial stdio -no-reboot \
    ${RT_CPU:+-cpu "$RT_CPU"} -m "${RT_MEM:-1024}" -kernel "$d/xen" \
    -append "console=com1 dom0_mem=512M,max:512M${RT_XEN_ARGS:+ $RT_XEN_ARGS}" \
    -initrd "$d/vmlinuz console=hvc0,$1"
}
