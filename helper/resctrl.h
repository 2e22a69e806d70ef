/*
 * resctrl.h: cache and memory-bandwidth monitoring through Linux resctrl
 *
 * The three libvirt events cmt, mbmt and mbml are not perf events: they are
 * read from a resctrl monitoring group that holds the VM's threads, and so
 * are the package telemetry events core_energy and activity (PERF_PKG,
 * Linux 7.0).  This backend finds or creates that group, keeps the VM's
 * threads in it, holds exactly the hardware counters the enabled MBM events
 * need when the kernel assigns counters (mbm_event mode, Linux 6.18), reads
 * the per-domain values (and Sub-NUMA sub-node shares), and removes the
 * group when it is done.  It knows nothing of QMP or sockets; the resctrl
 * root is a parameter so tests can point it at a simulated tree
 * (tests/resctrl-sim).
 *
 * Errors are in the QMP_ERROR domain (qmp/qmp-error.h), code
 * QMP_ERROR_GENERIC_ERROR, with a message a user can act on.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#pragma once

#include <glib.h>
#include <sys/types.h>

#define QPH_RESCTRL_DEFAULT_ROOT "/sys/fs/resctrl"

/* Changes never wait for another user's flock on the root: they fail with
 * G_FILE_ERROR_AGAIN, and set-perf-events tries again from a timer for this
 * long before it gives up (helper/dispatch.c). */
#define QPH_RESCTRL_LOCK_TIMEOUT_MS 5000

typedef enum {
    QPH_RESCTRL_FEATURE_CMT,  /* llc_occupancy */
    QPH_RESCTRL_FEATURE_MBMT, /* mbm_total_bytes */
    QPH_RESCTRL_FEATURE_MBML, /* mbm_local_bytes */
    QPH_RESCTRL_FEATURE_CORE_ENERGY, /* PERF_PKG core_energy, Joules */
    QPH_RESCTRL_FEATURE_ACTIVITY,    /* PERF_PKG activity, Farads */
    QPH_RESCTRL_FEATURE_LAST,
} QphResctrlFeature;

/* Which resctrl resource serves an event: its info/ and mon_data/ names. */
typedef enum {
    QPH_RESCTRL_RESOURCE_L3,       /* info/L3_MON, mon_data/mon_L3_XX */
    QPH_RESCTRL_RESOURCE_PERF_PKG, /* info/PERF_PKG_MON, mon_PERF_PKG_XX */
    QPH_RESCTRL_RESOURCE_LAST,
} QphResctrlResource;

/* info/L3_MON/mbm_assign_mode, as the helper found it. */
typedef enum {
    QPH_RESCTRL_ASSIGN_NONE,      /* no such file: a kernel before 6.18 */
    QPH_RESCTRL_ASSIGN_DEFAULT,   /* "[default]": a counter per group */
    QPH_RESCTRL_ASSIGN_MBM_EVENT, /* "[mbm_event]": counters are assigned */
} QphResctrlAssignMode;

typedef enum {
    QPH_RESCTRL_KIND_GAUGE,      /* a snapshot: bytes held now */
    QPH_RESCTRL_KIND_CUMULATIVE, /* a counter: bytes since the group began */
} QphResctrlKind;

typedef struct {
    const char *event; /* libvirt's name: "cmt", "mbmt", "mbml", or the
                        * kernel's for telemetry: "core_energy" */
    const char *file;  /* the mon_data file: "llc_occupancy", ... */
    QphResctrlKind kind;
    const char *unit; /* "bytes", "nanojoules", "nanofarads" */
    QphResctrlResource resource;
    gboolean mbm;   /* needs an assigned counter in mbm_event mode */
    guint decimals; /* 0: the kernel prints an integer; else a decimal,
                     * kept as an integer in units of 10^-decimals */
} QphResctrlFeatureInfo;

/* The state of one domain's value, as the kernel reports it. */
typedef enum {
    QPH_RESCTRL_VALUE_OK,
    QPH_RESCTRL_VALUE_UNAVAILABLE, /* "Unavailable": not counted yet, reset */
    QPH_RESCTRL_VALUE_ERROR,       /* "Error": the hardware said so */
    QPH_RESCTRL_VALUE_UNASSIGNED,  /* "Unassigned": no counter assigned */
    QPH_RESCTRL_VALUE_LAST,
} QphResctrlValueStatus;

/* One Sub-NUMA node's share of an L3 domain (mon_sub_L3_YY). */
typedef struct {
    guint node; /* the YY of mon_sub_L3_YY */
    QphResctrlValueStatus status;
    guint64 value;
} QphResctrlSubValue;

typedef struct {
    guint domain; /* the XX of mon_L3_XX or mon_PERF_PKG_XX */
    QphResctrlValueStatus status;
    guint64 value; /* meaningful only when status is QPH_RESCTRL_VALUE_OK */
    gboolean has_assigned; /* mbm_event mode, MBM events only */
    gboolean assigned;     /* a hardware counter is assigned here */
    GArray *subs; /* of QphResctrlSubValue by node; NULL without SNC */
} QphResctrlDomainValue;

typedef struct {
    guint64 total;    /* sum over the domains whose status is OK */
    guint n_ok;       /* how many domains that is */
    GArray *domains;  /* of QphResctrlDomainValue, by domain id */
} QphResctrlReading;

typedef struct QphResctrlMon QphResctrlMon;

const QphResctrlFeatureInfo *qph_resctrl_feature_info(QphResctrlFeature f);
gboolean qph_resctrl_feature_from_event(const char *event,
                                        QphResctrlFeature *feature);
/* "ok", "unavailable", "error", "unassigned" */
const char *qph_resctrl_value_status_name(QphResctrlValueStatus status);

gboolean qph_resctrl_probe(const char *root, QphResctrlFeature feature,
                           GError **error);
QphResctrlAssignMode qph_resctrl_assign_mode(const char *root);

QphResctrlMon *qph_resctrl_mon_open(const char *root, pid_t pid,
                                    const pid_t *tids, guint n_tids,
                                    GError **error);
gboolean qph_resctrl_mon_add_threads(QphResctrlMon *mon, const pid_t *tids,
                                     guint n_tids, GError **error);
gboolean qph_resctrl_mon_read(QphResctrlMon *mon, QphResctrlFeature feature,
                              QphResctrlReading *out, GError **error);
/* Counter assignment (mbm_event mode; a no-op otherwise and for a group
 * that is not the helper's).  @wanted is indexed by QphResctrlFeature. */
gboolean qph_resctrl_mon_assign(QphResctrlMon *mon, const gboolean *wanted,
                                QphResctrlFeature *failed, GError **error);
void qph_resctrl_mon_release(QphResctrlMon *mon, const gboolean *wanted);
const char *qph_resctrl_mon_get_path(const QphResctrlMon *mon);
gboolean qph_resctrl_mon_is_owned(const QphResctrlMon *mon);
void qph_resctrl_mon_close(QphResctrlMon *mon);

gboolean qph_resctrl_cleanup_stale(const char *root, GError **error);
gboolean qph_resctrl_cleanup_leftover(const char *root, pid_t pid,
                                      GError **error);

void qph_resctrl_reading_clear(QphResctrlReading *reading);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QphResctrlMon, qph_resctrl_mon_close)
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QphResctrlReading, qph_resctrl_reading_clear)
