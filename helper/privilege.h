/*
 * privilege.h: what the helper keeps after start-up, and who may use it
 *
 * Every client of the helper's socket controls the VM, and in libvirt
 * mode the helper may run with more privilege than any client.  So once
 * started the helper gives up what it does not need, in numbered stages
 * (see privilege.c and docs/security.md), and limits the raw perf events
 * clients may open to an allowlist when the administrator gives one.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#include "helper/perf-set.h"

/* Capabilities the kernel may know; CAP_PERFMON arrived in Linux 5.8. */
#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif

typedef struct {
    int qemu_fd;               /* the monitor socket (for SO_PEERCRED) */
    pid_t qemu_pid;            /* 0: ask the socket */
    const char *listen_path;   /* the socket to create, or NULL (fd mode) */
    gboolean socket_group_set; /* --socket-group given */
    gid_t socket_gid;
} QphPrivilegeContext;

/**
 * qph_privilege_close_inherited:
 * Stage 1, before anything of the helper's own is opened: close every
 * descriptor above 2 but the @n_keep in @keep (--qemu-fd, --listen-fd).
 * Returns the number closed.
 */
guint qph_privilege_close_inherited(const int *keep, guint n_keep);

/**
 * qph_privilege_drop:
 * Stages 2 and 3, once QEMU is started or attached: PR_SET_NO_NEW_PRIVS,
 * then keep only the capabilities the helper needs (see privilege.c) in
 * the effective, permitted and bounding sets.  A helper without
 * capabilities (not root) only sets no_new_privs.
 */
gboolean qph_privilege_drop(const QphPrivilegeContext *ctx, GError **error);

/* The capabilities left, e.g. "perfmon, sys_ptrace", or "none". */
char *qph_privilege_describe(void);

/* ---- Raw event allowlist --------------------------------------------- */

/**
 * qph_event_allowlist_add:
 * Allow the raw (non-catalog) event @name.  Once any name is added, raw
 * events not added are refused; catalog names are always allowed.
 */
void qph_event_allowlist_add(const char *name);

/**
 * qph_event_allowlist_load:
 * Add every name in @path: one per line; blank lines and lines starting
 * with '#' are ignored.  An empty file allows no raw event at all.
 */
gboolean qph_event_allowlist_load(const char *path, GError **error);

/* Forget the allowlist (tests). */
void qph_event_allowlist_reset(void);

/**
 * qph_event_allowlist_check:
 * Refuse the whole request if one entry enables a raw event that is not
 * allowed (disabling is always allowed).  Called before anything of the
 * request is applied, so set-perf-events stays all-or-nothing.
 */
gboolean qph_event_allowlist_check(const QphPerfChange *changes, guint n,
                                   GError **error);
