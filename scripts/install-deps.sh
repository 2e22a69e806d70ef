#!/usr/bin/env bash
# Install what building, running and testing qemu-perf-helper needs, from
# Debian 12's own packages.  Safe to run again: it only calls apt-get when
# something is missing.
set -euo pipefail

packages=(
  # build
  build-essential meson ninja-build pkg-config
  libglib2.0-dev libpfm4-dev libcap-ng-dev libseccomp-dev
  # the VM the helper sits in front of, and its firmware
  qemu-system-x86 qemu-utils seabios ipxe-qemu
  # tests: pytest (functional), socat (benchmark reference), FUSE (resctrl double)
  python3 python3-pytest socat libfuse3-dev fuse3
  # qemu-perf-exporter (libsoup 3, a TLS backend for GIO, crypt(3)) and
  # its functional test (a real Prometheus; openssl makes a test cert)
  libsoup-3.0-dev glib-networking libcrypt-dev prometheus openssl
  # tests: qemu-perf-stat in a real terminal
  tmux
  # fuzzing and sanitizers
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Without udev, /dev/kvm may be root-only; QEMU under libvirt runs as
# libvirt-qemu (group kvm).
if [ -e /dev/kvm ] && getent group kvm >/dev/null; then
  chgrp kvm /dev/kvm 2>/dev/null || true
  chmod 0660 /dev/kvm 2>/dev/null || true
fi
