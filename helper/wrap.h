/*
 * wrap.h: libvirt <emulator> wrapper mode of qemu-perf-helper
 *
 * libvirt starts QEMU with its monitor on a socket libvirt itself listens on
 * and later connects to by path.  In wrapper mode the helper binary is run in
 * QEMU's place (by contrib/libvirt/qemu-perf-wrapper, the domain's
 * <emulator>): it keeps libvirt's listening socket for a detached helper,
 * gives QEMU one end of a private socketpair as its monitor, and then execs
 * the real QEMU under the same pid, so libvirt talks to the helper without
 * knowing it.  Every run that does not carry libvirt's monitor (capability
 * probes, -help, -version) execs the real QEMU untouched.
 *
 * Usage, as main.c forwards it (argv[0] is the program, "--wrap" may follow):
 *
 *   qemu-perf-helper --wrap [OPTION]... -- QEMU-ARGS...
 *
 *   --real-qemu PATH   QEMU binary to exec (default
 * /usr/bin/qemu-system-x86_64)
 *   --helper PATH      helper binary to start (default: this executable)
 *   --helper-arg ARG   append ARG to the helper's command line (repeatable),
 *                      e.g. --helper-arg=-v --helper-arg=--daemon-log=/x.log
 *   --enable EVENTS    events the helper enables at start, "A,B,..."
 *                      (repeatable); passed on as the helper's --enable
 *   --config FILE      read defaults from FILE (a GKeyFile, group [wrapper],
 *                      keys qemu, helper, helper-args, enabled, enable;
 *                      groups [domain NAME] and [uuid UUID], key enable);
 *                      a missing FILE is not an error, options on the
 *                      command line win
 *
 * QEMU-ARGS are QEMU's arguments without argv[0] (the wrapper script passes
 * "$@").  main.c must call qph_wrap_main() before it opens any descriptor or
 * starts any thread: every descriptor the wrapper inherits belongs to QEMU.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

/**
 * qph_wrap_main:
 * Run wrapper mode.  On success it does not return (the process becomes
 * QEMU); it returns an exit status (1 for bad usage or configuration, 127
 * when QEMU cannot be executed) after printing the reason on stderr.
 */
int qph_wrap_main(int argc, char **argv);
